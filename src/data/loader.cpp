// Background batch loader with a bounded prefetch queue and DistributedSampler-style sharding.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "contrastive/common.h"
#include "contrastive/data.h"

namespace contrastive {

struct Loader::State {
  torch::Tensor labels;  // cached: a subset's labels() builds a new tensor on every call
  std::mutex mutex;
  std::condition_variable changed;  // queue, done or stop changed
  std::deque<Batch> queue;
  bool started = false;
  bool done = true;   // the worker has produced its last batch (or failed)
  bool stop = false;  // asks the worker to give up the current epoch
  std::exception_ptr error;
  std::thread worker;
  double wait_seconds = 0;  // in next(), waiting for the worker

  void halt() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    changed.notify_all();
    if (worker.joinable()) worker.join();
    queue.clear();
    error = nullptr;
    stop = false;
    done = true;
  }
};

Loader::Loader(std::shared_ptr<Dataset> dataset, LoaderOptions options, Prepare prepare)
    : dataset_(std::move(dataset)),
      options_(options),
      prepare_(std::move(prepare)),
      state_(std::make_unique<State>()) {
  if (!dataset_ || dataset_->size() <= 0) throw InputError("loader: the dataset is empty");
  if (options_.batch_size <= 0) throw InputError("batch size must be positive");
  if (options_.world_size < 1) throw InputError("world size must be at least 1");
  if (options_.rank < 0 || options_.rank >= options_.world_size) {
    throw InputError("rank " + std::to_string(options_.rank) + " is outside [0," +
                     std::to_string(options_.world_size) + ")");
  }
  if (options_.drop_last && samples_per_rank() < options_.batch_size) {
    throw InputError("batch size " + std::to_string(options_.batch_size) + " exceeds the " +
                     std::to_string(samples_per_rank()) + " samples per rank, and drop_last leaves no batch");
  }
  state_->labels = dataset_->labels();
}

Loader::~Loader() { state_->halt(); }

int64_t Loader::samples_per_rank() const {
  return (dataset_->size() + options_.world_size - 1) / options_.world_size;
}

int64_t Loader::steps_per_epoch() const {
  const int64_t n = samples_per_rank();
  return options_.drop_last ? n / options_.batch_size : (n + options_.batch_size - 1) / options_.batch_size;
}

void Loader::start_epoch(int64_t epoch, int64_t first_step) {
  const int64_t steps = steps_per_epoch();
  if (first_step < 0 || first_step > steps) {
    throw InputError("resume step " + std::to_string(first_step) + " is outside the epoch's " +
                     std::to_string(steps) + " steps");
  }
  state_->halt();

  // This rank's share of the epoch's permutation: padded by wrapping around to a multiple of the world
  // size, then every world_size-th position, so all ranks get samples_per_rank() samples.
  const int64_t n = dataset_->size();
  torch::Tensor order;
  if (options_.shuffle) {
    auto gen = at::detail::createCPUGenerator(mix_seed(options_.seed, static_cast<uint64_t>(epoch), 0x5eed));
    order = at::randperm(n, gen, at::kLong);
  } else {
    order = at::arange(n, at::kLong);
  }
  const int64_t per_rank = samples_per_rank();
  const auto positions = at::arange(per_rank, at::kLong) * options_.world_size + options_.rank;
  torch::Tensor shard = order.index_select(0, positions.remainder(n));

  state_->started = true;
  state_->done = false;
  state_->worker = std::thread([this, shard, epoch, first_step, steps, per_rank] {
    State& st = *state_;
    try {
      // A new thread takes LibTorch's global count at its first parallel op; this sets its own (and the global,
      // which the caller's threads no longer read: configure_threads pinned them).
      if (options_.threads > 0) at::set_num_threads(static_cast<int>(options_.threads));
      for (int64_t step = first_step; step < steps; ++step) {
        {
          std::lock_guard<std::mutex> lock(st.mutex);
          if (st.stop) return;
        }
        const int64_t begin = step * options_.batch_size;
        const int64_t end = std::min(begin + options_.batch_size, per_rank);
        Batch batch;
        batch.indices = shard.slice(0, begin, end).clone();
        batch.images = dataset_->get(batch.indices);
        batch.labels = st.labels.index_select(0, batch.indices);
        batch.epoch = epoch;
        batch.step = step;
        if (prepare_) prepare_(batch);

        std::unique_lock<std::mutex> lock(st.mutex);
        const auto capacity = static_cast<size_t>(std::max<int64_t>(1, options_.prefetch));
        st.changed.wait(lock, [&] { return st.stop || st.queue.size() < capacity; });
        if (st.stop) return;
        st.queue.push_back(std::move(batch));
        lock.unlock();
        st.changed.notify_all();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(st.mutex);
      st.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(st.mutex);
      st.done = true;
    }
    st.changed.notify_all();
  });
}

double Loader::wait_seconds() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->wait_seconds;
}

std::optional<Batch> Loader::next() {
  State& st = *state_;
  if (!st.started) throw std::logic_error("Loader::next() called before start_epoch()");
  std::unique_lock<std::mutex> lock(st.mutex);
  if (st.queue.empty() && !st.done) {
    const auto t0 = std::chrono::steady_clock::now();
    st.changed.wait(lock, [&] { return !st.queue.empty() || st.done; });
    st.wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (!st.queue.empty()) {
    Batch batch = std::move(st.queue.front());
    st.queue.pop_front();
    lock.unlock();
    st.changed.notify_all();
    return batch;
  }
  // Batches made before a failure are handed out first; the error then ends the epoch, once.
  if (st.error) {
    auto error = st.error;
    st.error = nullptr;
    std::rethrow_exception(error);
  }
  return std::nullopt;
}

}  // namespace contrastive
