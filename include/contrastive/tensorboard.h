// TensorBoard's formats, written natively: scalar event files (what `tensorboard --logdir runs/` plots) and the
// embedding projector's files. The messages are protobuf classes compiled from src/io/tensorboard.proto and the
// records are framed as TFRecords (length, masked CRC32C from Boost.CRC). docs/watching.md.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace contrastive {

// True when this build writes TensorBoard files (built with libprotobuf-dev, protobuf-compiler, libboost-dev).
bool tensorboard_available();

// One event file, DIR/events.out.tfevents.<unix time>.<host>.<pid>, created (with its directory) on
// construction. Every record is flushed to the file when written, so a run killed at any point leaves a readable
// file. Throws RunError when the file cannot be created, InputError in a build without TensorBoard support.
class EventWriter {
 public:
  explicit EventWriter(const std::string& dir);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  // Scalars of one step, one event (TensorBoard's scalar plugin reads each tag's series).
  void scalars(const std::map<std::string, double>& values, int64_t step);
  void scalar(const std::string& tag, double value, int64_t step) { scalars({{tag, value}}, step); }
  const std::string& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The projector's files in DIR: tensors.tsv (one row of features per item), metadata.tsv (the names, and the
// labels when given: a header row then one row per item) and projector_config.pbtxt pointing at both. DIR is
// then a log directory `tensorboard --logdir DIR` shows in its Projector tab. Throws like EventWriter.
void write_projector(const std::string& dir, const torch::Tensor& features, const std::vector<std::string>& names,
                     const torch::Tensor& labels = {}, const std::vector<std::string>& class_names = {});

}  // namespace contrastive
