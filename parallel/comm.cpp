// parallel/comm.cpp — see comm.h.
#include "parallel/comm.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"

namespace hibari {
namespace {

// An MPI return code as a hibari Error naming the call (communicators are set to
// MPI_ERRORS_RETURN, so a failure reaches us instead of aborting the job with MPI's message).
void check_mpi(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  fail(std::string(call) + " failed: " + std::string(text, size_t(len)));
}

// MPI counts are int (Open MPI 4 has no large-count calls); a bigger buffer must be cut by the
// caller (buckets are far smaller).
int mpi_count(size_t n, const char* call) {
  if (n > size_t(INT_MAX)) {
    fail(std::string(call) + ": " + std::to_string(n) + " floats exceed MPI's int count");
  }
  return int(n);
}

// (p-1)/p * n * 4 bytes: what each rank sends in one ring pass over a buffer of n floats.
uint64_t ring_pass_bytes(const Comm& comm, size_t n) {
  return uint64_t(comm.size - 1) * uint64_t(n) * sizeof(float) / uint64_t(comm.size);
}

void notify_change() {
  if (void (*changed)() = collective_trace().changed.load(std::memory_order_acquire)) changed();
}

// Marks a collective in collective_trace() for its duration.
struct TraceScope {
  TraceScope(const char* what, const Comm& comm, size_t floats) {
    CollectiveTrace& t = collective_trace();
    t.calls.fetch_add(1, std::memory_order_relaxed);
    t.group.store(comm.name, std::memory_order_relaxed);
    t.floats.store(floats, std::memory_order_relaxed);
    t.current.store(what, std::memory_order_release);
    notify_change();
  }
  ~TraceScope() {
    collective_trace().current.store(nullptr, std::memory_order_release);
    notify_change();
  }
  TraceScope(const TraceScope&) = delete;
  TraceScope& operator=(const TraceScope&) = delete;
};

}  // namespace

CollectiveTrace& collective_trace() {
  static CollectiveTrace trace;
  return trace;
}

uint64_t comm_bytes_total(const CommBytes& bytes) {
  return bytes.all_reduce + bytes.reduce_scatter + bytes.all_gather + bytes.broadcast +
         bytes.point_to_point;
}

CommBytes comm_bytes_add(const CommBytes& a, const CommBytes& b) {
  return {a.all_reduce + b.all_reduce, a.reduce_scatter + b.reduce_scatter,
          a.all_gather + b.all_gather, a.broadcast + b.broadcast,
          a.point_to_point + b.point_to_point};
}

CommBytes comm_bytes_sub(const CommBytes& a, const CommBytes& b) {
  return {a.all_reduce - b.all_reduce, a.reduce_scatter - b.reduce_scatter,
          a.all_gather - b.all_gather, a.broadcast - b.broadcast,
          a.point_to_point - b.point_to_point};
}

bool comm_launched_by_mpirun() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

bool comm_uses_mpi() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized != 0 && finalized == 0;
}

int comm_launch_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"}) {
    if (const char* value = std::getenv(name)) return std::atoi(value);
  }
  return -1;
}

Comm comm_init(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  const char* force = std::getenv("HIBARI_MPI");
  const bool want = comm_launched_by_mpirun() || (force != nullptr && std::strcmp(force, "1") == 0);
  if (!initialized && want) {
    int provided = 0;
    check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    check(provided >= MPI_THREAD_FUNNELED,
          "MPI_Init_thread: this MPI library does not support MPI_THREAD_FUNNELED");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  return comm_world();
}

void comm_finalize() {
  if (comm_uses_mpi()) check_mpi(MPI_Finalize(), "MPI_Finalize");
}

Comm comm_world() {
  Comm comm;
  if (!comm_uses_mpi()) return comm;  // one process, no MPI: rank 0 of 1, mpi = MPI_COMM_NULL
  comm.mpi = MPI_COMM_WORLD;
  MPI_Comm_rank(comm.mpi, &comm.rank);
  MPI_Comm_size(comm.mpi, &comm.size);
  return comm;
}

Comm comm_split(const Comm& comm, int color, int key, const char* name) {
  Comm out;
  out.name = name;
  if (comm.size == 1) {  // every split of one rank is that rank (and needs no MPI)
    out.owned = true;
    return out;
  }
  check_mpi(MPI_Comm_split(comm.mpi, color, key, &out.mpi), "MPI_Comm_split");
  MPI_Comm_set_errhandler(out.mpi, MPI_ERRORS_RETURN);
  MPI_Comm_rank(out.mpi, &out.rank);
  MPI_Comm_size(out.mpi, &out.size);
  out.owned = true;
  return out;
}

void comm_free(Comm& comm) {
  if (comm.owned && comm.mpi != MPI_COMM_NULL) check_mpi(MPI_Comm_free(&comm.mpi), "MPI_Comm_free");
  comm = Comm{};
}

void all_reduce_sum(Comm& comm, std::span<float> buf) {
  int count = mpi_count(buf.size(), "all_reduce_sum");
  if (comm.size == 1) return;
  TraceScope trace("all_reduce", comm, buf.size());
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, buf.data(), count, MPI_FLOAT, MPI_SUM, comm.mpi),
            "MPI_Allreduce");
  comm.bytes.all_reduce += 2 * ring_pass_bytes(comm, buf.size());
}

void all_reduce_sum_f64(Comm& comm, std::span<double> buf) {
  int count = mpi_count(buf.size(), "all_reduce_sum_f64");
  if (comm.size == 1) return;
  TraceScope trace("all_reduce", comm, buf.size() * 2);
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, buf.data(), count, MPI_DOUBLE, MPI_SUM, comm.mpi),
            "MPI_Allreduce");
  comm.bytes.all_reduce += 2 * 2 * ring_pass_bytes(comm, buf.size());
}

CommRequest all_reduce_sum_start(Comm& comm, std::span<float> buf) {
  int count = mpi_count(buf.size(), "all_reduce_sum_start");
  CommRequest request;
  if (comm.size == 1) return request;  // already finished: the empty request
  TraceScope trace("all_reduce (start)", comm, buf.size());
  check_mpi(
      MPI_Iallreduce(MPI_IN_PLACE, buf.data(), count, MPI_FLOAT, MPI_SUM, comm.mpi, &request.mpi),
      "MPI_Iallreduce");
  comm.bytes.all_reduce += 2 * ring_pass_bytes(comm, buf.size());
  return request;
}

void comm_wait(CommRequest& request) {
  if (request.mpi == MPI_REQUEST_NULL) return;
  CollectiveTrace& t = collective_trace();
  t.calls.fetch_add(1, std::memory_order_relaxed);
  t.current.store("all_reduce (wait)", std::memory_order_release);
  notify_change();
  check_mpi(MPI_Wait(&request.mpi, MPI_STATUS_IGNORE), "MPI_Wait (all_reduce_sum)");
  t.current.store(nullptr, std::memory_order_release);
  notify_change();
}

bool comm_test(CommRequest& request) {
  if (request.mpi == MPI_REQUEST_NULL) return true;
  int done = 0;
  check_mpi(MPI_Test(&request.mpi, &done, MPI_STATUS_IGNORE), "MPI_Test (all_reduce_sum)");
  return done != 0;
}

void reduce_scatter_sum(Comm& comm, std::span<float> out, std::span<const float> in) {
  if (in.size() != out.size() * size_t(comm.size))
    fail("reduce_scatter_sum: input of " + std::to_string(in.size()) + " floats is not " +
         std::to_string(comm.size) + " blocks of " + std::to_string(out.size()));
  int count = mpi_count(out.size(), "reduce_scatter_sum");
  if (comm.size == 1) {
    std::copy(in.begin(), in.end(), out.begin());
    return;
  }
  TraceScope trace("reduce_scatter", comm, in.size());
  check_mpi(MPI_Reduce_scatter_block(in.data(), out.data(), count, MPI_FLOAT, MPI_SUM, comm.mpi),
            "MPI_Reduce_scatter_block");
  comm.bytes.reduce_scatter += ring_pass_bytes(comm, in.size());
}

void all_gather(Comm& comm, std::span<float> out, std::span<const float> in) {
  if (out.size() != in.size() * size_t(comm.size))
    fail("all_gather: output of " + std::to_string(out.size()) + " floats is not " +
         std::to_string(comm.size) + " blocks of " + std::to_string(in.size()));
  int count = mpi_count(in.size(), "all_gather");
  if (comm.size == 1) {
    std::copy(in.begin(), in.end(), out.begin());
    return;
  }
  TraceScope trace("all_gather", comm, out.size());
  check_mpi(MPI_Allgather(in.data(), count, MPI_FLOAT, out.data(), count, MPI_FLOAT, comm.mpi),
            "MPI_Allgather");
  comm.bytes.all_gather += ring_pass_bytes(comm, out.size());
}

CommRequest reduce_scatter_sum_start(Comm& comm, std::span<float> out, std::span<const float> in,
                                     const int* counts) {
  size_t total = 0;
  for (int r = 0; r < comm.size; ++r) total += size_t(counts[r]);
  check(total == in.size() && out.size() == size_t(counts[comm.rank]),
        "reduce_scatter_sum_start: blocks do not match the buffers");
  mpi_count(in.size(), "reduce_scatter_sum_start");
  CommRequest request;
  if (comm.size == 1) {
    std::copy(in.begin(), in.end(), out.begin());
    return request;
  }
  TraceScope trace("reduce_scatter (start)", comm, in.size());
  check_mpi(MPI_Ireduce_scatter(in.data(), out.data(), counts, MPI_FLOAT, MPI_SUM, comm.mpi,
                                &request.mpi),
            "MPI_Ireduce_scatter");
  comm.bytes.reduce_scatter += ring_pass_bytes(comm, in.size());
  return request;
}

CommRequest all_gather_start(Comm& comm, std::span<float> out, std::span<const float> in) {
  if (out.size() != in.size() * size_t(comm.size))
    fail("all_gather_start: output of " + std::to_string(out.size()) + " floats is not " +
         std::to_string(comm.size) + " blocks of " + std::to_string(in.size()));
  int count = mpi_count(in.size(), "all_gather_start");
  CommRequest request;
  if (comm.size == 1) {
    std::copy(in.begin(), in.end(), out.begin());
    return request;
  }
  TraceScope trace("all_gather (start)", comm, out.size());
  check_mpi(MPI_Iallgather(in.data(), count, MPI_FLOAT, out.data(), count, MPI_FLOAT, comm.mpi,
                           &request.mpi),
            "MPI_Iallgather");
  comm.bytes.all_gather += ring_pass_bytes(comm, out.size());
  return request;
}

CommRequest all_gather_bytes_start(Comm& comm, std::span<uint8_t> out,
                                   std::span<const uint8_t> in) {
  if (out.size() != in.size() * size_t(comm.size))
    fail("all_gather_bytes_start: output of " + std::to_string(out.size()) + " bytes is not " +
         std::to_string(comm.size) + " blocks of " + std::to_string(in.size()));
  int count = mpi_count(in.size(), "all_gather_bytes_start");
  CommRequest request;
  if (comm.size == 1) {
    std::copy(in.begin(), in.end(), out.begin());
    return request;
  }
  TraceScope trace("all_gather (bytes, start)", comm, out.size() / sizeof(float));
  check_mpi(MPI_Iallgather(in.data(), count, MPI_BYTE, out.data(), count, MPI_BYTE, comm.mpi,
                           &request.mpi),
            "MPI_Iallgather");
  comm.bytes.all_gather += uint64_t(comm.size - 1) * out.size() / uint64_t(comm.size);
  return request;
}

BucketRange even_block(size_t n, int p, int r) {
  size_t len = (n + size_t(p) - 1) / size_t(p);
  return {std::min(n, size_t(r) * len), std::min(n, size_t(r + 1) * len)};
}

void all_gather_even(Comm& comm, std::span<float> buf) {
  mpi_count(buf.size(), "all_gather_even");
  if (comm.size == 1) return;  // the one block is the buffer
  // Grown once per process, not per call: the training step allocates nothing.
  thread_local std::vector<int> counts, displs;
  counts.resize(size_t(comm.size));
  displs.resize(size_t(comm.size));
  for (int r = 0; r < comm.size; ++r) {
    BucketRange b = even_block(buf.size(), comm.size, r);
    counts[size_t(r)] = int(b.size());
    displs[size_t(r)] = int(b.begin);
  }
  TraceScope trace("all_gather (even)", comm, buf.size());
  check_mpi(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf.data(), counts.data(),
                           displs.data(), MPI_FLOAT, comm.mpi),
            "MPI_Allgatherv");
  comm.bytes.all_gather += ring_pass_bytes(comm, buf.size());
}

void broadcast(Comm& comm, std::span<float> buf, int root) {
  if (root < 0 || root >= comm.size)
    fail("broadcast: root " + std::to_string(root) + " outside a communicator of " +
         std::to_string(comm.size));
  int count = mpi_count(buf.size(), "broadcast");
  if (comm.size == 1) return;
  TraceScope trace("broadcast", comm, buf.size());
  check_mpi(MPI_Bcast(buf.data(), count, MPI_FLOAT, root, comm.mpi), "MPI_Bcast");
  comm.bytes.broadcast += ring_pass_bytes(comm, buf.size());
}

void barrier(const Comm& comm) {
  if (comm.size == 1) return;
  TraceScope trace("barrier", comm, 0);
  check_mpi(MPI_Barrier(comm.mpi), "MPI_Barrier");
}

void all_gather_bytes(Comm& comm, std::span<uint8_t> out, std::span<const uint8_t> in) {
  if (out.size() != in.size() * size_t(comm.size))
    fail("all_gather_bytes: output of " + std::to_string(out.size()) + " bytes is not " +
         std::to_string(comm.size) + " blocks of " + std::to_string(in.size()));
  int count = mpi_count(in.size(), "all_gather_bytes");
  if (comm.size == 1) {
    std::copy(in.begin(), in.end(), out.begin());
    return;
  }
  TraceScope trace("all_gather (bytes)", comm, out.size() / sizeof(float));
  check_mpi(MPI_Allgather(in.data(), count, MPI_BYTE, out.data(), count, MPI_BYTE, comm.mpi),
            "MPI_Allgather");
  comm.bytes.all_gather += uint64_t(comm.size - 1) * out.size() / uint64_t(comm.size);
}

void send_recv(Comm& comm, std::span<const float> send, int dest, std::span<float> recv,
               int source) {
  auto check_peer = [&comm](int peer) {
    if (peer >= comm.size)
      fail("send_recv: rank " + std::to_string(peer) + " outside a communicator of " +
           std::to_string(comm.size));
  };
  check_peer(dest);
  check_peer(source);
  int send_count = mpi_count(dest >= 0 ? send.size() : 0, "send_recv");
  int recv_count = mpi_count(source >= 0 ? recv.size() : 0, "send_recv");
  if (comm.size == 1) {
    // To itself: the message is the copy; a half without its other half would never complete.
    if ((dest >= 0) != (source >= 0)) fail("send_recv: one rank sends to or receives from itself");
    if (dest >= 0) {
      if (recv.size() < send.size()) fail("send_recv: the receive buffer is shorter than the send");
      std::copy(send.begin(), send.end(), recv.begin());
    }
    return;
  }
  TraceScope trace(dest >= 0 && source >= 0 ? "send_recv"
                   : dest >= 0              ? "send"
                                            : "recv",
                   comm, size_t(send_count + recv_count));
  check_mpi(MPI_Sendrecv(send.data(), send_count, MPI_FLOAT, dest >= 0 ? dest : MPI_PROC_NULL, 0,
                         recv.data(), recv_count, MPI_FLOAT, source >= 0 ? source : MPI_PROC_NULL,
                         0, comm.mpi, MPI_STATUS_IGNORE),
            "MPI_Sendrecv");
  comm.bytes.point_to_point += uint64_t(send_count) * sizeof(float);
}

namespace {

// Tags of the error report's messages on the world (collectives use their own context: no clash).
constexpr int kErrorTag = 0x4842;  // a rank's message, to rank 0
constexpr int kSeenTag = 0x4843;   // rank 0 has it
constexpr int kDoneTag = 0x4844;   // rank 0 has printed it
// Longer messages are cut: a short message goes eagerly, so a send never waits for rank 0.
constexpr size_t kErrorChars = 2000;

// Polls `request` (MPI_Test progresses it) until it completes or `seconds` pass.
bool wait_for(MPI_Request& request, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    int done = 0;
    if (MPI_Test(&request, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) return false;
    if (done) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void print_line(FILE* err, const char* prefix, const std::string& text) {
  std::fprintf(err, "%s%s\n", prefix, text.c_str());
  std::fflush(err);
}

// "rank 2", "ranks 0, 1, 3"
std::string ranks_text(const std::vector<int>& ranks) {
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) text += (i ? ", " : "") + std::to_string(ranks[i]);
  return text;
}

}  // namespace

void comm_report_error(const Comm& world, const std::string& message, FILE* err, const char* prefix,
                       const ErrorReportTimes& times) {
  std::fflush(stdout);
  if (!comm_uses_mpi() || world.size == 1) {
    print_line(err, prefix, message);
    return;
  }
  // Static: an unanswered send may still read it while the process ends.
  static std::string text;
  text = message.substr(0, kErrorChars);
  using Clock = std::chrono::steady_clock;
  auto seconds_since = [](Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  };
  if (world.rank != 0) {
    MPI_Request sent = MPI_REQUEST_NULL, seen = MPI_REQUEST_NULL, done = MPI_REQUEST_NULL;
    MPI_Isend(text.data(), int(text.size()), MPI_CHAR, 0, kErrorTag, MPI_COMM_WORLD, &sent);
    MPI_Irecv(nullptr, 0, MPI_CHAR, 0, kSeenTag, MPI_COMM_WORLD, &seen);
    MPI_Irecv(nullptr, 0, MPI_CHAR, 0, kDoneTag, MPI_COMM_WORLD, &done);
    if (wait_for(seen, times.seen_seconds) && wait_for(done, times.done_seconds)) return;
    // Nobody collects (or the collector vanished): say it here.  The requests stay pending; the
    // process ends right after.
    print_line(err, prefix, "rank " + std::to_string(world.rank) + ": " + text);
    return;
  }
  // Rank 0: collect, grouped by text.
  std::map<std::string, std::vector<int>> ranks_of;
  ranks_of[text].push_back(0);
  std::vector<int> senders;
  const auto start = Clock::now();
  auto last = start;
  while (int(senders.size()) < world.size - 1 && seconds_since(last) < times.quiet_seconds &&
         seconds_since(start) < times.max_seconds) {
    int found = 0;
    MPI_Status status;
    MPI_Iprobe(MPI_ANY_SOURCE, kErrorTag, MPI_COMM_WORLD, &found, &status);
    if (!found) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    int count = 0;
    MPI_Get_count(&status, MPI_CHAR, &count);
    std::string other(size_t(std::max(count, 0)), '\0');
    MPI_Recv(other.data(), count, MPI_CHAR, status.MPI_SOURCE, kErrorTag, MPI_COMM_WORLD,
             MPI_STATUS_IGNORE);
    MPI_Send(nullptr, 0, MPI_CHAR, status.MPI_SOURCE, kSeenTag, MPI_COMM_WORLD);
    senders.push_back(status.MPI_SOURCE);
    ranks_of[other].push_back(status.MPI_SOURCE);
    last = Clock::now();
  }
  // Ordered by their lowest rank: rank 0's message first.
  std::vector<std::pair<std::vector<int>, std::string>> lines;
  for (auto& [line, ranks] : ranks_of) {
    std::sort(ranks.begin(), ranks.end());
    lines.push_back({ranks, line});
  }
  std::sort(lines.begin(), lines.end());
  for (const auto& [ranks, line] : lines)
    print_line(err, prefix,
               int(ranks.size()) == world.size ? line : ranks_text(ranks) + ": " + line);
  for (int rank : senders) MPI_Send(nullptr, 0, MPI_CHAR, rank, kDoneTag, MPI_COMM_WORLD);
}

}  // namespace hibari
