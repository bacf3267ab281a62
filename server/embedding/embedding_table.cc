#include "server/embedding/embedding_table.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <new>
#include <numeric>

#include "absl/base/internal/endian.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/initializers.h"
#include "common/random.h"
#include "common/status.h"

namespace varscope::server::embedding {
namespace {

constexpr int kStripes = 32;
// A row record: frequency, last step, then the value and the slots'
// values (float32, little-endian as in memory).
constexpr size_t kRowHeader = 16;
// Rows under a budget are loaded up to this share of it at start-up.
constexpr double kLoadShare = 0.8;
// Spilling brings the rows in memory down to this share of the budget.
constexpr double kSpillShare = 0.85;
// Callers that add rows wait above this share (see WaitForRoom).
constexpr double kWaitShare = 1.10;

// Keys sort as numbers: big-endian with the sign bit flipped.
void PutKey(int64_t key, char* out) {
  absl::big_endian::Store64(out, static_cast<uint64_t>(key) ^ (1ull << 63));
}
int64_t GetKey(const char* in) {
  return static_cast<int64_t>(absl::big_endian::Load64(in) ^ (1ull << 63));
}

std::string TablePrefix(uint64_t table_id) {
  std::string prefix(8, '\0');
  absl::big_endian::Store64(prefix.data(), table_id);
  return prefix;
}

// The rows of one width (value and slots: `floats` values), dense (rows
// 0..size-1) in one anonymous mapping that grows and shrinks by pages, so
// that memory rows leave is memory returned to the system. Rows move when
// others are removed: callers hold their stripe's lock while they use a row.
class Arena {
 public:
  struct Header {
    int64_t key = 0;
    int64_t freq = 0;
    int64_t last_step = 0;
    bool dirty = false;      // changed since the store's copy
    bool referenced = true;  // touched since the clock hand passed
  };

  explicit Arena(size_t floats)
      : floats_(floats),
        stride_((sizeof(Header) + floats * sizeof(float) + 7) / 8 * 8) {}
  ~Arena() {
    if (capacity_ > 0) munmap(base_, capacity_);
  }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  size_t floats() const { return floats_; }
  uint32_t size() const { return size_; }
  // The bytes of the mapping (whole pages).
  int64_t bytes() const { return static_cast<int64_t>(capacity_); }
  int64_t stride() const { return static_cast<int64_t>(stride_); }
  Header& header(uint32_t i) {
    return *reinterpret_cast<Header*>(base_ + i * stride_);
  }
  float* values(uint32_t i) {
    return reinterpret_cast<float*>(base_ + i * stride_ + sizeof(Header));
  }

  // Appends a row (a default header, values unset) and returns its index.
  // Grows the mapping by at least an eighth; throws std::bad_alloc if the
  // system refuses.
  uint32_t Add() {
    const size_t need = (size_ + 1) * stride_;
    if (need > capacity_) {
      Remap(std::max(need, capacity_ + capacity_ / 8));
    }
    new (base_ + size_ * stride_) Header();
    return size_++;
  }

  // Removes row `i`, moving the last row into its place; returns whether a
  // row moved (then header(i).key names it).
  bool RemoveAt(uint32_t i) {
    --size_;
    if (i == size_) return false;
    memcpy(base_ + i * stride_, base_ + size_ * stride_, stride_);
    return true;
  }

  // Returns the pages beyond the rows to the system.
  void Fit() { Remap(size_ * stride_); }

  // The clock hand of spilling.
  uint32_t hand = 0;

 private:
  void Remap(size_t bytes) {
    static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    bytes = (bytes + page - 1) / page * page;
    if (bytes == capacity_) return;
    void* base = MAP_FAILED;
    if (bytes == 0) {
      munmap(base_, capacity_);
      base = nullptr;
    } else if (capacity_ == 0) {
      base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    } else {
      base = mremap(base_, capacity_, bytes, MREMAP_MAYMOVE);
    }
    if (base == MAP_FAILED) throw std::bad_alloc();
    base_ = static_cast<char*>(base);
    capacity_ = bytes;
  }

  const size_t floats_;
  const size_t stride_;
  char* base_ = nullptr;
  size_t capacity_ = 0;
  uint32_t size_ = 0;
};

}  // namespace

struct EmbeddingTable::Stripe {
  struct Candidate {
    int64_t freq = 0;
    int64_t last_step = 0;
  };
  // Where a key's row is: arenas[arena], row `row`.
  struct Ref {
    uint32_t arena = 0;
    uint32_t row = 0;
  };
  using Header = Arena::Header;

  absl::Mutex mu;
  absl::flat_hash_map<int64_t, Ref> index ABSL_GUARDED_BY(mu);
  // One per row width (rows gain slots as optimizers add them).
  std::vector<std::unique_ptr<Arena>> arenas ABSL_GUARDED_BY(mu);
  // The bytes accounted for the arenas and the index (see Resettle).
  int64_t bytes ABSL_GUARDED_BY(mu) = 0;
  // Keys seen below the admission frequency (kept in memory only).
  absl::flat_hash_map<int64_t, Candidate> candidates ABSL_GUARDED_BY(mu);
  // Keys whose rows became dirty (possibly repeated, possibly gone).
  std::vector<int64_t> dirty ABSL_GUARDED_BY(mu);
  // Interval mode: exactly-once records to write with the next write-back.
  std::vector<ExtraRecords> extra ABSL_GUARDED_BY(mu);

  // A row in memory: its header, its values and how many there are (the
  // value and the slots it has).
  struct Row {
    Header* header = nullptr;
    float* values = nullptr;
    size_t floats = 0;
  };
  // The key's row, or a null header.
  Row Find(int64_t key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = index.find(key);
    if (it == index.end()) return {};
    Arena& arena = *arenas[it->second.arena];
    return {&arena.header(it->second.row), arena.values(it->second.row),
            arena.floats()};
  }
  // Counts a lookup of the row at `step` (to be written back).
  void Touch(Header& row, int64_t step) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    row.referenced = true;
    ++row.freq;
    row.last_step = std::max(row.last_step, step);
    if (!row.dirty) {
      row.dirty = true;
      dirty.push_back(row.key);
    }
  }
  // Removes the key's row; returns whether it had one.
  bool Remove(int64_t key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = index.find(key);
    if (it == index.end()) return false;
    RemoveAt(it->second);  // moves another row, keeps `it`
    index.erase(it);
    return true;
  }

  // What Store did: whether the key was new, and whether its row took a
  // new place (new, or of another width), which may change the bytes held.
  struct Stored {
    bool inserted = false;
    bool placed = false;
  };
  // Stores the key's row (replacing any, referenced).
  Stored Store(int64_t key, int64_t freq, int64_t last_step, bool dirty_now,
               const float* values, size_t floats)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto [it, inserted] = index.try_emplace(key);
    const bool placed =
        inserted || arenas[it->second.arena]->floats() != floats;
    if (placed) {
      if (!inserted) RemoveAt(it->second);  // keeps `it`: it erases nothing
      uint32_t a = 0;
      while (a < arenas.size() && arenas[a]->floats() != floats) ++a;
      if (a == arenas.size()) arenas.push_back(std::make_unique<Arena>(floats));
      it->second = {a, arenas[a]->Add()};
    }
    Arena& arena = *arenas[it->second.arena];
    Header& header = arena.header(it->second.row);
    header = {key, freq, last_step, dirty_now, true};
    memcpy(arena.values(it->second.row), values, floats * sizeof(float));
    if (dirty_now) dirty.push_back(key);
    return {inserted, placed};
  }

  // Removes the rows of `arena` for which `drop(header)` holds, from the
  // clock hand on, until `goal` bytes of rows are gone or each row was seen
  // twice; calls `removed(key)` for each. Then returns the pages the arena
  // no longer needs to the system.
  template <typename Drop, typename Removed>
  void Sweep(uint32_t a, int64_t goal, Drop drop, Removed removed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Arena& arena = *arenas[a];
    int64_t gone = 0;
    for (uint64_t seen = 0, limit = 2ull * arena.size();
         gone < goal && arena.size() > 0 && seen < limit; ++seen) {
      if (arena.hand >= arena.size()) arena.hand = 0;
      Header& header = arena.header(arena.hand);
      if (!drop(header)) {
        ++arena.hand;
        continue;
      }
      const int64_t key = header.key;
      RemoveAt({a, arena.hand});
      index.erase(key);
      removed(key);
      gone += arena.stride();
    }
    arena.Fit();
  }

  // The bytes the rows really hold (their arenas' pages and the index's
  // capacity) minus those accounted before; shrinks an index that holds
  // under a quarter of its capacity.
  int64_t Resettle() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (index.capacity() > 64 && index.size() * 4 < index.capacity()) {
      index.rehash(0);
    }
    int64_t held = static_cast<int64_t>(
        index.capacity() * (sizeof(std::pair<const int64_t, Ref>) + 1));
    for (const std::unique_ptr<Arena>& arena : arenas) held += arena->bytes();
    const int64_t delta = held - bytes;
    bytes = held;
    return delta;
  }

 private:
  void RemoveAt(Ref ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Arena& arena = *arenas[ref.arena];
    if (arena.RemoveAt(ref.row)) {
      index.find(arena.header(ref.row).key)->second = ref;
    }
    // Leaves at most a quarter of the mapping unused.
    if (arena.bytes() - arena.size() * arena.stride() > arena.bytes() / 4) {
      arena.Fit();
    }
  }
};

EmbeddingTable::EmbeddingTable(EmbeddingStore* store,
                               const v1::VariableInfo& info)
    : store_(store),
      table_id_(info.embedding().table_id()),
      options_(info.embedding()),
      dim_(info.embedding().embedding_dim()),
      initializer_(info.initializer()),
      stripes_(new Stripe[kStripes]) {}

EmbeddingTable::Stripe& EmbeddingTable::StripeOf(int64_t key) const {
  // The high bits: shards take the hash modulo their count (see
  // EmbeddingShardOf), which would leave stripes unused.
  return stripes_[(SplitMix64(static_cast<uint64_t>(key)) >> 40) % kStripes];
}

void EmbeddingTable::Account(int64_t delta) {
  resident_bytes_.fetch_add(delta);
  store_->resident_bytes_.fetch_add(delta);
}

std::string EmbeddingTable::RowKey(int64_t key) const {
  std::string out = TablePrefix(table_id_);
  out.resize(16);
  PutKey(key, out.data() + 8);
  return out;
}

std::string EmbeddingTable::EncodeRow(int64_t freq, int64_t last_step,
                                      const float* values,
                                      size_t floats) const {
  std::string out(kRowHeader + floats * sizeof(float), '\0');
  absl::little_endian::Store64(out.data(), static_cast<uint64_t>(freq));
  absl::little_endian::Store64(out.data() + 8,
                               static_cast<uint64_t>(last_step));
  memcpy(out.data() + kRowHeader, values, floats * sizeof(float));
  return out;
}

void EmbeddingTable::StoreRow(Stripe& stripe, int64_t key, int64_t freq,
                              int64_t last_step, bool dirty,
                              const float* values, size_t floats) {
  const Stripe::Stored stored =
      stripe.Store(key, freq, last_step, dirty, values, floats);
  if (stored.inserted) resident_keys_.fetch_add(1);
  // A row replaced in place holds the bytes it held.
  if (stored.placed) Account(stripe.Resettle());
}

void EmbeddingTable::InitialRow(int64_t key, float* out) const {
  // A pure function of (seed, key): every worker, every restart and a key
  // admitted again after eviction see the same row.
  const int64_t seed = static_cast<int64_t>(
      SplitMix64(static_cast<uint64_t>(initializer_.seed()) ^
                 SplitMix64(static_cast<uint64_t>(key))) >>
      1);
  const std::vector<int64_t> dims = {1, dim_};
  absl::StatusOr<Tensor> row =
      InitialValue(initializer_, seed, v1::DT_FLOAT, dims, {0, 0}, dims);
  // The initializer was validated for this shape when the variable was
  // created.
  if (row.ok()) {
    memcpy(out, row->bytes().data(), static_cast<size_t>(dim_) * 4);
  } else {
    std::fill(out, out + dim_, 0.0f);
  }
}

int64_t EmbeddingTable::StepOf(std::optional<int64_t> global_step,
                               bool update) {
  if (!global_step.has_value()) {
    return update ? step_.fetch_add(1) + 1 : step_.load();
  }
  int64_t now = step_.load();
  while (*global_step > now &&
         !step_.compare_exchange_weak(now, *global_step)) {
  }
  return *global_step;
}

absl::Status EmbeddingTable::Load() {
  const std::string begin = TablePrefix(table_id_);
  const std::string end = TablePrefix(table_id_ + 1);
  const int64_t budget = store_->options_.memory_budget;
  absl::Status status;
  int64_t max_step = 0;
  absl::MutexLock a(&apply_mu_);
  VS_RETURN_IF_ERROR(store_->storage_->ScanEmbedding(
      begin, end, [&](absl::string_view key, absl::string_view value) {
        if (key.size() == 8) {  // the slot names
          v1::EmbeddingSlots slots;
          if (!slots.ParseFromArray(value.data(),
                                    static_cast<int>(value.size()))) {
            status = absl::DataLossError(
                absl::StrCat("The slot record of embedding table ", table_id_,
                             " does not parse"));
            return false;
          }
          for (const v1::EmbeddingSlots::Slot& s : slots.slots()) {
            AddSlot({s.name(), s.initial()});
          }
          return true;
        }
        if (key.size() != 16 || value.size() < kRowHeader ||
            (value.size() - kRowHeader) % (sizeof(float) * dim_) != 0) {
          status = absl::DataLossError(absl::StrCat(
              "A row record of embedding table ", table_id_, " is damaged"));
          return false;
        }
        const int64_t last_step =
            static_cast<int64_t>(absl::little_endian::Load64(value.data() + 8));
        max_step = std::max(max_step, last_step);
        if (budget > 0 && store_->ResidentBytes() >= budget * kLoadShare) {
          cold_keys_.fetch_add(1);
          return true;
        }
        const int64_t k = GetKey(key.data() + 8);
        Stripe& stripe = StripeOf(k);
        absl::MutexLock l(&stripe.mu);
        StoreRow(
            stripe, k,
            static_cast<int64_t>(absl::little_endian::Load64(value.data())),
            last_step, /*dirty=*/false,
            reinterpret_cast<const float*>(value.data() + kRowHeader),
            (value.size() - kRowHeader) / sizeof(float));
        return true;
      }));
  step_.store(max_step);
  return status;
}

absl::Status EmbeddingTable::ReadThrough(absl::Span<const int64_t> keys) {
  std::vector<int64_t> missing;
  for (int64_t key : keys) {
    Stripe& stripe = StripeOf(key);
    absl::MutexLock l(&stripe.mu);
    if (stripe.Find(key).header == nullptr) missing.push_back(key);
  }
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  if (missing.empty()) return absl::OkStatus();
  std::vector<std::string> row_keys;
  row_keys.reserve(missing.size());
  for (int64_t key : missing) row_keys.push_back(RowKey(key));
  VS_ASSIGN_OR_RETURN(std::vector<std::optional<std::string>> values,
                      store_->storage_->MultiGetEmbedding(row_keys));
  for (size_t i = 0; i < missing.size(); ++i) {
    if (!values[i].has_value()) continue;
    const std::string& value = *values[i];
    if (value.size() < kRowHeader ||
        (value.size() - kRowHeader) % (sizeof(float) * dim_) != 0) {
      return absl::DataLossError(absl::StrCat(
          "A row record of embedding table ", table_id_, " is damaged"));
    }
    Stripe& stripe = StripeOf(missing[i]);
    absl::MutexLock l(&stripe.mu);
    // Under disk_mu_ shared nothing removes rows: only a concurrent
    // read-through can have brought it in, with the same record.
    if (stripe.Find(missing[i]).header != nullptr) continue;
    cold_keys_.fetch_sub(1);
    StoreRow(
        stripe, missing[i],
        static_cast<int64_t>(absl::little_endian::Load64(value.data())),
        static_cast<int64_t>(absl::little_endian::Load64(value.data() + 8)),
        /*dirty=*/false,
        reinterpret_cast<const float*>(value.data() + kRowHeader),
        (value.size() - kRowHeader) / sizeof(float));
  }
  return absl::OkStatus();
}

absl::Status EmbeddingTable::Lookup(absl::Span<const int64_t> keys,
                                    std::optional<int64_t> global_step,
                                    bool read_only, float* out) {
  const int64_t step = StepOf(global_step, /*update=*/false);
  const size_t dim = static_cast<size_t>(dim_);
  std::vector<size_t> missing;
  auto copy_stored = [&](size_t i) {
    const int64_t key = keys[i];
    Stripe& stripe = StripeOf(key);
    absl::MutexLock l(&stripe.mu);
    const Stripe::Row row = stripe.Find(key);
    if (row.header == nullptr) return false;
    memcpy(out + i * dim, row.values, dim * sizeof(float));
    row.header->referenced = true;
    if (!read_only) stripe.Touch(*row.header, step);
    return true;
  };
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!copy_stored(i)) missing.push_back(i);
  }
  if (missing.empty()) return absl::OkStatus();
  if (cold_keys_.load() > 0) {
    std::vector<int64_t> missing_keys;
    for (size_t i : missing) missing_keys.push_back(keys[i]);
    store_->WaitForRoom();  // the rows read through stay in memory
    absl::ReaderMutexLock d(&disk_mu_);
    VS_RETURN_IF_ERROR(ReadThrough(missing_keys));
    std::vector<size_t> still;
    for (size_t i : missing) {
      if (!copy_stored(i)) still.push_back(i);
    }
    missing.swap(still);
  }
  if (!missing.empty() && !read_only) store_->WaitForRoom();
  const int64_t filter = std::max<int64_t>(options_.filter_freq(), 1);
  // An admitted row holds the slots rows have, at their initial values, so
  // that the first update replaces it in place.
  std::vector<float> row;
  for (size_t i : missing) {
    const int64_t key = keys[i];
    InitialRow(key, out + i * dim);
    if (read_only) continue;
    Stripe& stripe = StripeOf(key);
    absl::MutexLock l(&stripe.mu);
    if (Stripe::Header* stored = stripe.Find(key).header;
        stored != nullptr) {  // admitted by a concurrent call
      stripe.Touch(*stored, step);
      continue;
    }
    Stripe::Candidate& candidate = stripe.candidates[key];
    if (candidate.freq == 0) candidates_.fetch_add(1);
    ++candidate.freq;
    candidate.last_step = std::max(candidate.last_step, step);
    if (candidate.freq < filter) {
      filtered_.fetch_add(1);
      continue;
    }
    if (row.empty()) row = NewRowSlots();
    std::copy(out + i * dim, out + (i + 1) * dim, row.begin());
    StoreRow(stripe, key, candidate.freq, candidate.last_step,
             /*dirty=*/true, row.data(), row.size());
    stripe.candidates.erase(key);
    candidates_.fetch_sub(1);
    admitted_.fetch_add(1);
  }
  return absl::OkStatus();
}

void EmbeddingTable::AddSlot(const RowSlot& slot) {
  slots_.push_back(slot);
  num_slots_.store(static_cast<int>(slots_.size()));
  absl::MutexLock l(&initials_mu_);
  initials_.push_back(slot.initial);
}

std::vector<float> EmbeddingTable::NewRowSlots() const {
  const size_t dim = static_cast<size_t>(dim_);
  absl::MutexLock l(&initials_mu_);
  std::vector<float> row(dim * (1 + initials_.size()));
  for (size_t s = 0; s < initials_.size(); ++s) {
    std::fill(row.begin() + (s + 1) * dim, row.begin() + (s + 2) * dim,
              initials_[s]);
  }
  return row;
}

std::vector<int> EmbeddingTable::SlotIndices(const std::vector<RowSlot>& slots,
                                             StorageBatch& batch) {
  std::vector<int> indices;
  bool added = false;
  for (const RowSlot& slot : slots) {
    auto it = std::find_if(slots_.begin(), slots_.end(), [&](const RowSlot& s) {
      return s.name == slot.name;
    });
    if (it == slots_.end()) {
      AddSlot(slot);
      added = true;
      it = slots_.end() - 1;
    }
    indices.push_back(static_cast<int>(it - slots_.begin()));
  }
  if (added) {
    v1::EmbeddingSlots record;
    for (const RowSlot& s : slots_) {
      v1::EmbeddingSlots::Slot* slot = record.add_slots();
      slot->set_name(s.name);
      slot->set_initial(s.initial);
    }
    batch.PutEmbedding(TablePrefix(table_id_), record.SerializeAsString());
  }
  return indices;
}

absl::StatusOr<EmbeddingTable::ApplyResult> EmbeddingTable::Apply(
    absl::Span<const int64_t> keys, const float* gradients,
    const std::vector<RowSlot>& slots, ApplyFn apply,
    std::optional<int64_t> global_step,
    const std::function<void(const ApplyResult&, StorageBatch&)>& extra) {
  const size_t dim = static_cast<size_t>(dim_);
  // Distinct keys in key order (a store write sorted by key is the cheapest
  // for RocksDB to insert), duplicates' gradients summed in their order.
  std::vector<size_t> order(keys.size());
  std::iota(order.begin(), order.end(), size_t{0});
  if (!std::is_sorted(keys.begin(), keys.end())) {
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t x, size_t y) { return keys[x] < keys[y]; });
  }
  std::vector<int64_t> distinct;
  std::vector<float> grads;
  distinct.reserve(keys.size());
  grads.reserve(keys.size() * dim);
  for (size_t i : order) {
    const float* grad = gradients + i * dim;
    if (!distinct.empty() && distinct.back() == keys[i]) {
      float* sum = grads.data() + grads.size() - dim;
      for (size_t j = 0; j < dim; ++j) sum[j] += grad[j];
    } else {
      distinct.push_back(keys[i]);
      grads.insert(grads.end(), grad, grad + dim);
    }
  }
  store_->WaitForRoom();
  absl::MutexLock a(&apply_mu_);
  absl::ReaderMutexLock d(&disk_mu_);
  if (cold_keys_.load() > 0) VS_RETURN_IF_ERROR(ReadThrough(distinct));
  const int64_t step = StepOf(global_step, /*update=*/true);
  StorageBatch batch;
  const std::vector<int> slot_index = SlotIndices(slots, batch);
  const size_t floats = dim * (1 + slots_.size());
  const int64_t filter = std::max<int64_t>(options_.filter_freq(), 1);

  // The new rows, computed from copies; nothing visible changes until the
  // store write succeeded.
  struct Update {
    int64_t key;
    int64_t freq;
    bool admitted;  // the key becomes stored with this update
  };
  std::vector<Update> updates;
  updates.reserve(distinct.size());
  // updates.size() x floats, each set before it is read.
  const std::unique_ptr<float[]> values =
      std::make_unique_for_overwrite<float[]>(distinct.size() * floats);
  std::vector<float*> slot_rows(slot_index.size());
  ApplyResult result;
  std::vector<int64_t> filtered_keys;
  for (size_t u = 0; u < distinct.size(); ++u) {
    const int64_t key = distinct[u];
    float* row = values.get() + updates.size() * floats;
    size_t known = 0;  // the floats the stored row has, if any
    Update update{key, 0, false};
    {
      Stripe& stripe = StripeOf(key);
      absl::MutexLock l(&stripe.mu);
      if (const Stripe::Row old = stripe.Find(key); old.header != nullptr) {
        known = old.floats;
        memcpy(row, old.values, known * sizeof(float));
        update.freq = old.header->freq + 1;
      } else {
        auto c = stripe.candidates.find(key);
        const int64_t freq =
            (c == stripe.candidates.end() ? 0 : c->second.freq);
        if (freq + 1 < filter) {
          filtered_keys.push_back(key);
          continue;
        }
        update.freq = freq + 1;
        update.admitted = true;
      }
    }
    if (update.admitted) {
      InitialRow(key, row);
      known = dim;
    }
    for (size_t s = known / dim - 1; s < slots_.size(); ++s) {
      std::fill(row + (s + 1) * dim, row + (s + 2) * dim, slots_[s].initial);
    }
    for (size_t s = 0; s < slot_index.size(); ++s) {
      slot_rows[s] = row + (static_cast<size_t>(slot_index[s]) + 1) * dim;
    }
    apply(dim_, row, slot_rows, grads.data() + u * dim);
    updates.push_back(update);
  }
  result.applied = static_cast<int64_t>(updates.size());
  result.filtered = static_cast<int64_t>(filtered_keys.size());
  const bool interval =
      store_->options_.durability.mode == Durability::Mode::kInterval;
  if (!interval) {
    for (size_t u = 0; u < updates.size(); ++u) {
      batch.PutEmbedding(
          RowKey(updates[u].key),
          EncodeRow(updates[u].freq, step, values.get() + u * floats, floats));
    }
    if (extra) extra(result, batch);
  }
  // In the interval mode the batch holds new slot names only (rare): they
  // are written at once, as rows written later need them.
  if (!batch.empty()) VS_RETURN_IF_ERROR(store_->storage_->Write(batch));
  // Published stripe by stripe.
  for (size_t u = 0; u < updates.size(); ++u) {
    const Update& update = updates[u];
    Stripe& stripe = StripeOf(update.key);
    absl::MutexLock l(&stripe.mu);
    StoreRow(stripe, update.key, update.freq, step, /*dirty=*/interval,
             values.get() + u * floats, floats);
    if (update.admitted) {
      admitted_.fetch_add(1);
      if (stripe.candidates.erase(update.key) > 0) candidates_.fetch_sub(1);
    }
  }
  if (interval && extra) {
    absl::MutexLock l(&stripes_[0].mu);
    stripes_[0].extra.push_back(
        [extra, result](StorageBatch& b) { extra(result, b); });
  }
  for (int64_t key : filtered_keys) {
    Stripe& stripe = StripeOf(key);
    absl::MutexLock l(&stripe.mu);
    Stripe::Candidate& candidate = stripe.candidates[key];
    if (candidate.freq == 0) candidates_.fetch_add(1);
    ++candidate.freq;
    candidate.last_step = std::max(candidate.last_step, step);
    filtered_.fetch_add(1);
  }
  return result;
}

absl::StatusOr<int64_t> EmbeddingTable::Import(
    absl::Span<const int64_t> keys, const float* values,
    absl::Span<const int64_t> frequencies, absl::Span<const int64_t> last_steps,
    const SlotValues& slots, absl::Span<const int64_t> remove,
    const std::function<void(int64_t removed, StorageBatch&)>& extra) {
  const size_t dim = static_cast<size_t>(dim_);
  store_->WaitForRoom();
  absl::MutexLock a(&apply_mu_);
  absl::ReaderMutexLock d(&disk_mu_);
  if (cold_keys_.load() > 0) {
    VS_RETURN_IF_ERROR(ReadThrough(keys));
    VS_RETURN_IF_ERROR(ReadThrough(remove));
  }
  const int64_t step = step_.load();
  StorageBatch batch;
  // The given slot filling each of slots_, or -1.
  const std::vector<int> slot_index = SlotIndices(slots.slots, batch);
  std::vector<int> given(slots_.size(), -1);
  for (size_t g = 0; g < slot_index.size(); ++g) {
    given[slot_index[g]] = static_cast<int>(g);
  }
  const size_t floats = dim * (1 + slots_.size());
  const int64_t default_freq = std::max<int64_t>(options_.filter_freq(), 1);
  auto freq_of = [&](size_t i) {
    return frequencies.empty() ? default_freq : frequencies[i];
  };
  auto last_step_of = [&](size_t i) {
    return last_steps.empty() ? step : last_steps[i];
  };
  std::vector<float> rows(keys.size() * floats);
  for (size_t i = 0; i < keys.size(); ++i) {
    float* row = rows.data() + i * floats;
    memcpy(row, values + i * dim, dim * sizeof(float));
    // Slots not given keep their values; a new key's start at their
    // initial values.
    Stripe& stripe = StripeOf(keys[i]);
    absl::MutexLock l(&stripe.mu);
    const Stripe::Row old = stripe.Find(keys[i]);
    const size_t known = old.floats;
    for (size_t s = 0; s < slots_.size(); ++s) {
      float* slot = row + (s + 1) * dim;
      if (given[s] >= 0) {
        memcpy(slot, slots.values[given[s]].data() + i * dim,
               dim * sizeof(float));
      } else if (known >= (s + 2) * dim) {
        memcpy(slot, old.values + (s + 1) * dim, dim * sizeof(float));
      } else {
        std::fill(slot, slot + dim, slots_[s].initial);
      }
    }
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    batch.PutEmbedding(RowKey(keys[i]),
                       EncodeRow(freq_of(i), last_step_of(i),
                                 rows.data() + i * floats, floats));
  }
  // Read through above: a stored row of `remove` is in memory.
  std::vector<int64_t> removed(remove.begin(), remove.end());
  std::sort(removed.begin(), removed.end());
  removed.erase(std::unique(removed.begin(), removed.end()), removed.end());
  int64_t stored = 0;
  for (int64_t key : removed) {
    batch.DeleteEmbedding(RowKey(key));
    Stripe& stripe = StripeOf(key);
    absl::MutexLock l(&stripe.mu);
    stored += stripe.Find(key).header != nullptr ? 1 : 0;
  }
  if (extra) extra(stored, batch);
  VS_RETURN_IF_ERROR(store_->storage_->Write(batch));
  // As after a load: the table's step is at least its rows' last steps.
  if (!last_steps.empty()) {
    StepOf(*std::max_element(last_steps.begin(), last_steps.end()),
           /*update=*/false);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    Stripe& stripe = StripeOf(keys[i]);
    absl::MutexLock l(&stripe.mu);
    const bool known = stripe.Find(keys[i]).header != nullptr;
    StoreRow(stripe, keys[i], freq_of(i), last_step_of(i), /*dirty=*/false,
             rows.data() + i * floats, floats);
    if (!known) admitted_.fetch_add(1);
    if (stripe.candidates.erase(keys[i]) > 0) candidates_.fetch_sub(1);
  }
  for (int64_t key : removed) {
    Stripe& stripe = StripeOf(key);
    absl::MutexLock l(&stripe.mu);
    if (!stripe.Remove(key)) continue;
    resident_keys_.fetch_sub(1);
    Account(stripe.Resettle());
  }
  return stored;
}

absl::StatusOr<ExportedRows> EmbeddingTable::Export(
    std::optional<int64_t> start_after, int64_t limit, bool with_slots) {
  VS_RETURN_IF_ERROR(WriteBack());
  ExportedRows out;
  const size_t dim = static_cast<size_t>(dim_);
  if (with_slots) {
    absl::MutexLock a(&apply_mu_);
    out.slots.slots = slots_;
    out.slots.values.resize(slots_.size());
  }
  const std::vector<RowSlot>& slots = out.slots.slots;
  std::string begin = TablePrefix(table_id_);
  if (start_after.has_value()) {
    if (*start_after == std::numeric_limits<int64_t>::max()) {
      out.done = true;
      return out;
    }
    begin = RowKey(*start_after + 1);
  } else {
    begin = RowKey(std::numeric_limits<int64_t>::min());
  }
  absl::Status status;
  out.done = true;
  VS_RETURN_IF_ERROR(store_->storage_->ScanEmbedding(
      begin, TablePrefix(table_id_ + 1),
      [&](absl::string_view key, absl::string_view value) {
        if (static_cast<int64_t>(out.keys.size()) == limit) {
          out.done = false;
          return false;
        }
        if (key.size() != 16 || value.size() < kRowHeader + dim * 4) {
          status = absl::DataLossError(absl::StrCat(
              "A row record of embedding table ", table_id_, " is damaged"));
          return false;
        }
        out.keys.push_back(GetKey(key.data() + 8));
        out.frequencies.push_back(
            static_cast<int64_t>(absl::little_endian::Load64(value.data())));
        out.last_steps.push_back(static_cast<int64_t>(
            absl::little_endian::Load64(value.data() + 8)));
        const size_t at = out.values.size();
        out.values.resize(at + dim);
        memcpy(out.values.data() + at, value.data() + kRowHeader,
               dim * sizeof(float));
        // A row stored before a slot was added lacks it.
        const size_t held = (value.size() - kRowHeader) / (dim * 4) - 1;
        for (size_t s = 0; s < slots.size(); ++s) {
          std::vector<float>& slot = out.slots.values[s];
          slot.resize(at + dim, slots[s].initial);
          if (s < held) {
            memcpy(slot.data() + at,
                   value.data() + kRowHeader + (s + 1) * dim * 4,
                   dim * sizeof(float));
          }
        }
        return true;
      }));
  VS_RETURN_IF_ERROR(status);
  return out;
}

v1::EmbeddingStats EmbeddingTable::Stats(int hottest) const {
  v1::EmbeddingStats stats;
  const int64_t cold = cold_keys_.load();
  stats.set_memory_keys(resident_keys_.load());
  stats.set_disk_keys(cold);
  stats.set_size(stats.memory_keys() + cold);
  stats.set_memory_bytes(resident_bytes_.load());
  stats.set_disk_bytes(
      cold * static_cast<int64_t>(kRowHeader + 16 +
                                  dim_ * (1 + num_slots_.load()) * 4));
  stats.set_candidates(candidates_.load());
  stats.set_admitted(admitted_.load());
  stats.set_filtered(filtered_.load());
  stats.set_evicted(evicted_.load());
  stats.set_global_step(step_.load());
  *stats.mutable_options() = options_;
  if (hottest <= 0) return stats;
  // The most frequent keys in memory: a min-heap of `hottest`.
  std::vector<std::pair<int64_t, int64_t>> top;  // (freq, key)
  auto cmp = [](const auto& a, const auto& b) { return a > b; };
  for (int s = 0; s < kStripes; ++s) {
    Stripe& stripe = stripes_[s];
    absl::MutexLock l(&stripe.mu);
    for (const std::unique_ptr<Arena>& arena : stripe.arenas) {
      for (uint32_t i = 0; i < arena->size(); ++i) {
        const std::pair<int64_t, int64_t> row(arena->header(i).freq,
                                              arena->header(i).key);
        if (static_cast<int>(top.size()) < hottest) {
          top.push_back(row);
          std::push_heap(top.begin(), top.end(), cmp);
        } else if (row > top.front()) {
          std::pop_heap(top.begin(), top.end(), cmp);
          top.back() = row;
          std::push_heap(top.begin(), top.end(), cmp);
        }
      }
    }
  }
  std::sort_heap(top.begin(), top.end(), cmp);
  for (const auto& [freq, key] : top) {
    v1::EmbeddingStats::HotKey* hot = stats.add_hottest();
    hot->set_key(key);
    hot->set_frequency(freq);
  }
  return stats;
}

absl::Status EmbeddingTable::WriteBack() {
  // One store write for every stripe: the store holds the table as of one
  // moment, with the exactly-once records of the updates it holds.
  absl::ReaderMutexLock d(&disk_mu_);
  std::vector<std::vector<int64_t>> written(kStripes);
  std::vector<std::pair<int64_t, std::string>> rows;  // key, record
  std::vector<ExtraRecords> extra;
  for (int s = 0; s < kStripes; ++s) {
    Stripe& stripe = stripes_[s];
    absl::MutexLock l(&stripe.mu);
    for (int64_t key : stripe.dirty) {
      const Stripe::Row row = stripe.Find(key);
      if (row.header == nullptr || !row.header->dirty) continue;
      rows.emplace_back(key, EncodeRow(row.header->freq, row.header->last_step,
                                       row.values, row.floats));
      row.header->dirty = false;
      written[s].push_back(key);
    }
    stripe.dirty.clear();
    extra.insert(extra.end(), stripe.extra.begin(), stripe.extra.end());
    stripe.extra.clear();
  }
  // In key order: RocksDB inserts a sorted write into its memtable for a
  // fraction of what random order costs.
  std::sort(rows.begin(), rows.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  StorageBatch batch;
  for (auto& [key, record] : rows) {
    batch.PutEmbedding(RowKey(key), std::move(record));
  }
  for (const ExtraRecords& e : extra) e(batch);
  if (batch.empty()) return absl::OkStatus();
  const absl::Status status = store_->storage_->Write(batch);
  if (status.ok()) return absl::OkStatus();
  // Written again next time.
  for (int s = 0; s < kStripes; ++s) {
    Stripe& stripe = stripes_[s];
    absl::MutexLock l(&stripe.mu);
    for (int64_t key : written[s]) {
      Stripe::Header* row = stripe.Find(key).header;
      if (row != nullptr && !row->dirty) {
        row->dirty = true;
        stripe.dirty.push_back(key);
      }
    }
    if (s == 0) {
      stripe.extra.insert(stripe.extra.begin(), extra.begin(), extra.end());
    }
  }
  return status;
}

absl::Status EmbeddingTable::Evict() {
  if (options_.steps_to_live() <= 0) return absl::OkStatus();
  const int64_t oldest = step_.load() - options_.steps_to_live();
  for (int s = 0; s < kStripes; ++s) {
    Stripe& stripe = stripes_[s];
    absl::MutexLock d(&disk_mu_);
    StorageBatch batch;
    int64_t removed = 0;
    {
      absl::MutexLock l(&stripe.mu);
      for (uint32_t a = 0; a < stripe.arenas.size(); ++a) {
        stripe.Sweep(
            a, std::numeric_limits<int64_t>::max(),
            [&](const Stripe::Header& row) { return row.last_step < oldest; },
            [&](int64_t key) {
              batch.DeleteEmbedding(RowKey(key));
              ++removed;
            });
      }
      for (auto it = stripe.candidates.begin();
           it != stripe.candidates.end();) {
        if (it->second.last_step < oldest) {
          candidates_.fetch_sub(1);
          stripe.candidates.erase(it++);
        } else {
          ++it;
        }
      }
      Account(stripe.Resettle());
    }
    if (removed == 0) continue;
    // Removed from memory first: lookups meanwhile see initial rows, which
    // is what eviction means.
    resident_keys_.fetch_sub(removed);
    evicted_.fetch_add(removed);
    VS_RETURN_IF_ERROR(store_->storage_->Write(batch));
  }
  if (cold_keys_.load() == 0) return absl::OkStatus();
  // Cold rows: their last steps are in their records.
  std::vector<int64_t> expired;
  VS_RETURN_IF_ERROR(store_->storage_->ScanEmbedding(
      RowKey(std::numeric_limits<int64_t>::min()), TablePrefix(table_id_ + 1),
      [&](absl::string_view key, absl::string_view value) {
        if (key.size() == 16 && value.size() >= kRowHeader &&
            static_cast<int64_t>(
                absl::little_endian::Load64(value.data() + 8)) < oldest) {
          expired.push_back(GetKey(key.data() + 8));
        }
        return true;
      }));
  absl::MutexLock d(&disk_mu_);
  StorageBatch batch;
  int64_t removed = 0;
  for (int64_t key : expired) {
    Stripe& stripe = StripeOf(key);
    absl::MutexLock l(&stripe.mu);
    if (stripe.Find(key).header != nullptr) continue;  // read through since
    batch.DeleteEmbedding(RowKey(key));
    ++removed;
  }
  if (removed == 0) return absl::OkStatus();
  VS_RETURN_IF_ERROR(store_->storage_->Write(batch));
  cold_keys_.fetch_sub(removed);
  evicted_.fetch_add(removed);
  return absl::OkStatus();
}

absl::Status EmbeddingTable::Spill(int64_t target) {
  // Each stripe frees its share of what is over the target, by clock: a row
  // referenced since the hand passed it gets another chance.
  for (int s = 0; s < kStripes; ++s) {
    const int64_t over = store_->ResidentBytes() - target;
    if (over <= 0) return absl::OkStatus();
    const int64_t share = (over + kStripes - s - 1) / (kStripes - s);
    Stripe& stripe = stripes_[s];
    absl::MutexLock d(&disk_mu_);
    absl::MutexLock l(&stripe.mu);
    int64_t removed = 0;
    const int64_t before = stripe.bytes;
    for (uint32_t a = 0; a < stripe.arenas.size(); ++a) {
      stripe.Sweep(
          a, share - (before - stripe.bytes),
          [](Stripe::Header& row) {
            const bool keep = row.dirty || row.referenced;
            row.referenced = false;
            return !keep;
          },
          [&](int64_t) { ++removed; });
      Account(stripe.Resettle());
    }
    resident_keys_.fetch_sub(removed);
    cold_keys_.fetch_add(removed);
  }
  return absl::OkStatus();
}

absl::Status EmbeddingTable::MaintainForTest() {
  return store_->MaintainForTest();
}

std::unique_ptr<EmbeddingStore> EmbeddingStore::Open(
    const EmbeddingOptions& options, Storage* storage) {
  std::unique_ptr<EmbeddingStore> store(new EmbeddingStore(options, storage));
  store->thread_ = std::thread([s = store.get()] { s->Loop(); });
  return store;
}

EmbeddingStore::EmbeddingStore(const EmbeddingOptions& options,
                               Storage* storage)
    : options_(options), storage_(storage) {}

EmbeddingStore::~EmbeddingStore() {
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
  for (const std::shared_ptr<EmbeddingTable>& table : Tables()) {
    const absl::Status status = table->WriteBack();
    if (!status.ok()) {
      std::cerr << "Writing embedding rows at shutdown failed: " << status
                << std::endl;
    }
  }
}

std::vector<std::shared_ptr<EmbeddingTable>> EmbeddingStore::Tables() const {
  absl::MutexLock l(&mu_);
  std::vector<std::shared_ptr<EmbeddingTable>> out;
  for (const auto& [id, table] : tables_) out.push_back(table);
  return out;
}

absl::StatusOr<std::shared_ptr<EmbeddingTable>> EmbeddingStore::Get(
    const v1::VariableInfo& info) {
  const uint64_t id = info.embedding().table_id();
  // Loading under mu_ keeps a second caller from seeing a half-loaded
  // table; only the first use of a table after a start pays it.
  absl::MutexLock l(&mu_);
  auto it = tables_.find(id);
  if (it != tables_.end()) return it->second;
  std::shared_ptr<EmbeddingTable> table(new EmbeddingTable(this, info));
  VS_RETURN_IF_ERROR(table->Load());
  tables_.emplace(id, table);
  return table;
}

absl::Status EmbeddingStore::DropOthers(const std::vector<uint64_t>& live) {
  std::vector<uint64_t> sorted = live;
  std::sort(sorted.begin(), sorted.end());
  StorageBatch batch;
  // The gaps between live tables' key ranges.
  std::string begin;
  for (uint64_t id : sorted) {
    const std::string start = TablePrefix(id);
    if (begin < start) batch.DeleteEmbeddingRange(begin, start);
    begin = id == ~uint64_t{0} ? std::string(9, '\xff') : TablePrefix(id + 1);
  }
  batch.DeleteEmbeddingRange(begin, std::string(9, '\xff'));
  return storage_->Write(batch);
}

void EmbeddingStore::WaitForRoom() {
  if (options_.memory_budget <= 0) return;
  const auto limit = static_cast<int64_t>(
      static_cast<double>(options_.memory_budget) * kWaitShare);
  if (ResidentBytes() <= limit) return;
  absl::MutexLock l(&room_mu_);
  // Spilling needs clean rows: write back, then spill, until there is room,
  // or a round freed nothing (every row in memory was in use).
  while (ResidentBytes() > limit && !stop_.HasBeenNotified()) {
    const int64_t before = ResidentBytes();
    if (!Maintain().ok() || ResidentBytes() >= before) return;
  }
}

absl::Status EmbeddingStore::Maintain() {
  absl::MutexLock m(&maintain_mu_);
  absl::Status status;
  const std::vector<std::shared_ptr<EmbeddingTable>> tables = Tables();
  for (const std::shared_ptr<EmbeddingTable>& table : tables) {
    status.Update(table->WriteBack());
    status.Update(table->Evict());
  }
  if (options_.memory_budget > 0 &&
      ResidentBytes() > options_.memory_budget * kSpillShare) {
    const auto target = static_cast<int64_t>(
        static_cast<double>(options_.memory_budget) * kSpillShare);
    for (const std::shared_ptr<EmbeddingTable>& table : tables) {
      status.Update(table->Spill(target));
    }
  }
  return status;
}

absl::Status EmbeddingStore::MaintainForTest() { return Maintain(); }

void EmbeddingStore::Loop() {
  absl::Duration every = options_.maintenance_interval;
  if (options_.memory_budget > 0) {
    every = std::min(every, absl::Milliseconds(100));
  }
  if (options_.durability.mode == Durability::Mode::kInterval) {
    every = std::min(every, options_.durability.interval);
  }
  while (!stop_.WaitForNotificationWithTimeout(every)) {
    const absl::Status status = Maintain();
    if (!status.ok()) {
      std::cerr << "Embedding maintenance failed: " << status << std::endl;
    }
  }
}

}  // namespace varscope::server::embedding
