// parallel/comm.h — a communicator and the collectives hibari uses, over MPI (Open MPI).
// Model and trainer code call these functions, never MPI itself, so that a CUDA backend can later
// carry the same calls over NCCL (docs/design.md section 2).
//
// Buffers are float spans; n is the element count of the whole buffer, p the communicator size.
// All collectives are in place where MPI allows it.
//
// Determinism: MPI_SUM over floats is not associative, so the bits of a sum depend on the order the
// algorithm adds in. Open MPI picks its algorithm (ring, recursive doubling, ...) from p and the
// message size; for a fixed rank count, message size and Open MPI version the algorithm is fixed
// and the result is the same run to run. A dp=N sum is therefore not bit-identical to one process
// adding the same numbers (issue 6 asks for 1e-5, not bits). What hibari does rely on: every rank
// ends an all-reduce with the same bits (every algorithm Open MPI ships either reduces each chunk
// on one rank and distributes it, or combines pairwise with a commutative operation; float addition
// is commutative bit for bit). tests/parallel/multiprocess checks this.
#pragma once

#include <mpi.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

namespace hibari {

// Bytes this rank sent, per kind of collective, counted by the textbook ring-algorithm volume (not
// what Open MPI's chosen algorithm actually sent), so a benchmark can print bytes per step beside
// the theory:  all-reduce 2(p-1)/p * n * 4,  reduce-scatter and all-gather (p-1)/p * n * 4 with n
// the full (unscattered) buffer,  broadcast (p-1)/p * n * 4 (the per-rank average of a chain).
struct CommBytes {
  uint64_t all_reduce = 0;
  uint64_t reduce_scatter = 0;
  uint64_t all_gather = 0;  // float and byte all-gathers
  uint64_t broadcast = 0;
  uint64_t point_to_point = 0;  // what send_recv sent
};
uint64_t comm_bytes_total(const CommBytes& bytes);
// Field by field: a + b, and a - b (the bytes sent between two readings).
CommBytes comm_bytes_add(const CommBytes& a, const CommBytes& b);
CommBytes comm_bytes_sub(const CommBytes& a, const CommBytes& b);

// [begin, end) element range of a buffer.
struct BucketRange {
  size_t begin = 0;
  size_t end = 0;
  size_t size() const { return end - begin; }
  bool operator==(const BucketRange&) const = default;
};

struct Comm {
  MPI_Comm mpi = MPI_COMM_NULL;
  const char* name = "world";  // which group ("world", "dp", "tp", "pp", ...), for messages
  int rank = 0;
  int size = 1;
  bool owned = false;  // made by comm_split: comm_free releases it (never MPI_COMM_WORLD)
  CommBytes bytes;
};

// Under mpirun: initializes MPI (MPI_THREAD_FUNNELED: only the thread that called this
// communicates) and returns the world.  A process started without a launcher is a 1-rank world
// that never touches MPI: Open MPI's singleton start costs 0.3-1 s (it starts a daemon), which a
// one-process `hibari train` does not need, since every collective on one rank is a copy or
// nothing.  HIBARI_MPI=1 initializes MPI anyway (a singleton).
Comm comm_init(int* argc, char*** argv);
// Finalizes MPI if it was initialized; every Comm from comm_split must have been freed before.
void comm_finalize();
// The world communicator once comm_init ran (a fresh byte counter each call); without MPI the
// 1-rank world (mpi = MPI_COMM_NULL).
Comm comm_world();
// True when a launcher started this process: Open MPI's mpirun (OMPI_COMM_WORLD_SIZE), a PMIx
// launcher such as srun --mpi=pmix (PMIX_RANK), or a PMI-1/2 one (PMI_RANK, PMI_SIZE).
bool comm_launched_by_mpirun();
// True between an MPI initialization and its finalization.
bool comm_uses_mpi();
// This process's world rank as the launcher's environment gives it (readable before MPI starts),
// or -1 without a launcher.
int comm_launch_rank();

// An error that ends this rank's part of the job, printed once for the whole job rather than once
// per rank (every rank of `mpirun -np 64` meets the same bad config).  No collective: the ranks
// that did not fail may be blocked in one.  Over point-to-point messages on the world:
//   a rank other than 0 sends its message to rank 0 and waits `seen_seconds` for a receipt; with
//   one it waits (up to `done_seconds`) until rank 0 has printed, and prints nothing itself;
//   without one (rank 0 did not fail, or failed much later) it prints "rank r: message".
//   Rank 0 collects messages until every rank sent one, no new one came for `quiet_seconds`, or
//   `max_seconds` passed; then prints each distinct message once: bare when every rank of the
//   world sent it, else after the ranks that did ("ranks 1, 3: message"); then releases them.
// Without MPI, or in a world of one, it prints the message.  Each line is `prefix` + text.
struct ErrorReportTimes {
  double quiet_seconds = 0.5;
  double max_seconds = 3;
  double seen_seconds = 2;
  double done_seconds = 10;
};
void comm_report_error(const Comm& world, const std::string& message, FILE* err,
                       const char* prefix = "hibari: error: ", const ErrorReportTimes& times = {});

// Ranks of `comm` with the same color form a new communicator, ordered by key (then by old rank).
// Collective over `comm`. The result must be released with comm_free. `name` (a string literal)
// names the group in messages.  Every call below on a communicator of one rank runs without MPI
// (a copy or nothing) and is not traced: nobody can be waited for.
Comm comm_split(const Comm& comm, int color, int key, const char* name = "split");
void comm_free(Comm& comm);

// buf = sum over ranks of buf, on every rank.
void all_reduce_sum(Comm& comm, std::span<float> buf);

// The same over doubles (norms and loss sums that must not lose digits on the way).
void all_reduce_sum_f64(Comm& comm, std::span<double> buf);

// A non-blocking collective in flight. Its buffers must stay alive and untouched until the wait.
struct CommRequest {
  MPI_Request mpi = MPI_REQUEST_NULL;
};
CommRequest all_reduce_sum_start(Comm& comm, std::span<float> buf);
// Waits for the request (a no-op on a finished or empty request) and empties it.
void comm_wait(CommRequest& request);
// Lets MPI progress the request without blocking (Open MPI moves a non-blocking collective forward
// only inside MPI calls); true once it has finished.
bool comm_test(CommRequest& request);

// in has p equal blocks of out.size(); out = sum over ranks of block `comm.rank` of in.
void reduce_scatter_sum(Comm& comm, std::span<float> out, std::span<const float> in);
// in is this rank's block; out (p * in.size()) = the blocks of all ranks in rank order.
void all_gather(Comm& comm, std::span<float> out, std::span<const float> in);
// A non-blocking reduce-scatter with blocks of any size: rank r receives the sum of the counts[r]
// floats at the offset sum(counts[0..r)) of `in` into `out` (counts[rank] floats). `counts`
// (comm.size entries) must stay alive until the wait, as the buffers.
CommRequest reduce_scatter_sum_start(Comm& comm, std::span<float> out, std::span<const float> in,
                                     const int* counts);

// The non-blocking all_gather (and its bytes form), finished by comm_wait.
CommRequest all_gather_start(Comm& comm, std::span<float> out, std::span<const float> in);
CommRequest all_gather_bytes_start(Comm& comm, std::span<uint8_t> out, std::span<const uint8_t> in);

// Even blocks: a buffer of n floats split over p ranks gives rank r the floats
// [r * ceil(n/p), (r + 1) * ceil(n/p)) clipped to n (the last blocks may be short or empty).
BucketRange even_block(size_t n, int p, int r);
// buf (n floats) holds this rank's even block in place; afterwards every block, from its owner.
void all_gather_even(Comm& comm, std::span<float> buf);

// buf on every rank = buf on `root`.
void broadcast(Comm& comm, std::span<float> buf, int root);
void barrier(const Comm& comm);

// Bytes instead of floats (quantized payloads): out (p * in.size()) = every rank's in, rank order.
void all_gather_bytes(Comm& comm, std::span<uint8_t> out, std::span<const uint8_t> in);

// Point to point, both directions at once (MPI_Sendrecv): sends `send` to rank `dest` and receives
// `recv` from rank `source` of `comm`. A negative dest or source skips that half, so one call
// serves send-only, receive-only and the paired exchanges of a pipeline schedule without deadlock.
void send_recv(Comm& comm, std::span<const float> send, int dest, std::span<float> recv,
               int source);

// What this process is doing inside parallel/, for a watchdog that finds a run stuck: the number of
// collectives begun, the one in progress (nullptr between collectives) and its group and size.
// Written by the communicating thread only, read by any thread (each field atomic; a reader may see
// a mix of two neighbouring calls, good enough for a diagnosis).
struct CollectiveTrace {
  std::atomic<uint64_t> calls{0};
  std::atomic<const char*> current{nullptr};  // "all_reduce", "all_gather", ... (string literal)
  std::atomic<const char*> group{nullptr};    // Comm::name of the call
  std::atomic<uint64_t> floats{0};            // its buffer size
  // Called by the communicating thread after a traced collective begins and after it ends (a rank
  // status that must say so at once: rank_status_follow_collectives); nullptr: nothing.
  std::atomic<void (*)()> changed{nullptr};
};
CollectiveTrace& collective_trace();

}  // namespace hibari
