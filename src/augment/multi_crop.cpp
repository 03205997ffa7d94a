// Multi-crop specs (augment.h): "2x32,4x16" -> (count, size) pairs.
#include <sstream>
#include <stdexcept>
#include <string>

#include "contrastive/augment_names.h"
#include "contrastive/common.h"

namespace contrastive {

std::vector<std::pair<int64_t, int64_t>> parse_multi_crop(const std::string& spec) {
  std::vector<std::pair<int64_t, int64_t>> out;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto x = item.find('x');
    int64_t n = 0, size = 0;
    try {
      size_t used_n = 0, used_s = 0;
      if (x == std::string::npos) throw std::invalid_argument("no x");
      n = std::stoll(item.substr(0, x), &used_n);
      size = std::stoll(item.substr(x + 1), &used_s);
      if (used_n != x || used_s != item.size() - x - 1) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      throw InputError("multi-crop: bad entry '" + item + "' in '" + spec + "' (expected e.g. 2x32,4x16)");
    }
    if (n < 1 || size < 1) throw InputError("multi-crop: counts and sizes must be positive in '" + spec + "'");
    out.emplace_back(n, size);
  }
  if (out.empty()) throw InputError("multi-crop: empty spec");
  return out;
}

}  // namespace contrastive
