#include "data/io.h"

#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "contrastive/common.h"

namespace contrastive::detail {

std::vector<uint8_t> read_file_bytes(const std::string& path, uint64_t limit) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw InputError(path + ": missing (no such file)");
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw InputError(path + ": cannot open for reading");
  std::vector<uint8_t> bytes;
  constexpr uint64_t kChunk = 1 << 20;
  while (bytes.size() < limit) {
    const uint64_t want = std::min<uint64_t>(kChunk, limit - bytes.size());
    const size_t old = bytes.size();
    bytes.resize(old + want);
    const int got = gzread(file, bytes.data() + old, static_cast<unsigned>(want));
    if (got < 0) {
      int errnum = 0;
      const std::string reason = gzerror(file, &errnum);
      gzclose(file);
      throw InputError(path + ": read error (" + reason + ")");
    }
    bytes.resize(old + static_cast<size_t>(got));
    if (static_cast<uint64_t>(got) < want) break;
  }
  // A gzip stream cut short just reads short (zlib does not fail on it), which the callers report as
  // truncated by comparing the size with the header.
  gzclose(file);
  return bytes;
}

bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path + ": cannot open for reading");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    const auto begin = line.find_first_not_of(" \t\r\n");
    if (begin == std::string::npos) continue;
    const auto end = line.find_last_not_of(" \t\r\n");
    lines.push_back(line.substr(begin, end - begin + 1));
  }
  return lines;
}

}  // namespace contrastive::detail
