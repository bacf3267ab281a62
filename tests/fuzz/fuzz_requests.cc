#include "tests/fuzz/fuzz_requests.h"

#include <limits>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace varscope::fuzz {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();
// Tensors are filled only up to this many bytes; larger ones get a short
// content (a length mismatch).
constexpr int64_t kMaxFilledBytes = 1 << 14;

const KnownVariable* PickKnown(FuzzInput& in,
                               absl::Span<const KnownVariable> known) {
  if (known.empty()) return nullptr;
  return &known[in.InRange<size_t>(0, known.size() - 1)];
}

std::string Segment(FuzzInput& in) {
  if (in.InRange(0, 11) != 0) {
    return in.Pick<std::string>({"a", "b", "w", "s", "v.1", "x-y", "0", "."});
  }
  switch (in.InRange(0, 12)) {
    case 0:
      return "";
    case 1:
      return " ";
    case 2:
      return "a b";
    case 3:
      return "\xc3\xa9";  // é
    case 4:
      return std::string(1, '\0');
    case 5:
      return "_u";
    case 6:
      return "-d";
    case 7:
      return std::string(1030, 'l');
    case 8:
      return std::string(500, 'm');
    case 9:
      return "part_0";
    case 10:
      return "part_1";
    case 11:
      return in.Pick<std::string>({"Adam", "Momentum", "Adagrad", "Ftrl"});
    default:
      return "..";
  }
}

int64_t Dim(FuzzInput& in) {
  if (in.InRange(0, 15) != 0) return in.InRange<int64_t>(0, 5);
  return in.Pick<int64_t>({-1, -2, 1 << 20, int64_t{1} << 32, 3037000500,
                           int64_t{1} << 50, kInt64Max, kInt64Min});
}

std::vector<int64_t> Dims(FuzzInput& in) {
  std::vector<int64_t> dims(in.InRange(0, 15) == 0 ? in.InRange(4, 9)
                                                   : in.InRange(0, 3));
  for (int64_t& d : dims) d = Dim(in);
  return dims;
}

DType AnyDType(FuzzInput& in) {
  if (in.InRange(0, 15) == 0) {
    return static_cast<DType>(in.Pick<int>({0, 7, 12, 99, -3}));
  }
  return kAllDTypes[in.InRange<size_t>(0, std::size(kAllDTypes) - 1)];
}

// The bytes a tensor of `dtype` and `dims` holds, or -1 if that is negative,
// overflows or is over kMaxFilledBytes.
int64_t ExpectedBytes(DType dtype, absl::Span<const int64_t> dims) {
  int64_t n = static_cast<int64_t>(DTypeSize(dtype));
  for (int64_t d : dims) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return -1;
  }
  return n > kMaxFilledBytes ? -1 : n;
}

// `n` pseudo-random bytes from one input byte (NaNs and infinities
// included): the values matter less than the lengths.
std::string Content(FuzzInput& in, int64_t n) {
  std::mt19937 rng(in.Integral<uint8_t>());
  // Small values: sums stay finite, and bools are 0 or 1.
  const bool small = in.Bool();
  std::string out(static_cast<size_t>(n), '\0');
  for (char& c : out) c = static_cast<char>(small ? rng() % 2 : rng());
  return out;
}

v1::Tensor IndicesTensor(FuzzInput& in, const KnownVariable* of) {
  v1::Tensor indices;
  indices.set_dtype(in.InRange(0, 5) == 0
                        ? AnyDType(in)
                        : in.Pick({v1::DT_INT32, v1::DT_INT64}));
  const int64_t rows = of != nullptr && !of->dims.empty() ? of->dims[0] : 2;
  const int n = in.InRange(0, 4);
  indices.mutable_shape()->add_dims(n);
  if (in.InRange(0, 7) == 0) indices.mutable_shape()->add_dims(1);
  const size_t size = DTypeSize(indices.dtype());
  for (int i = 0; i < n; ++i) {
    int64_t index = in.InRange(0, 3) != 0
                        ? in.InRange<int64_t>(0, std::max<int64_t>(rows - 1, 0))
                        : in.Pick<int64_t>({-1, rows, kInt64Max, kInt64Min,
                                            int64_t{1} << 32});
    char bytes[8];
    memcpy(bytes, &index, sizeof(bytes));
    indices.mutable_content()->append(bytes, std::min<size_t>(size, 8));
  }
  return indices;
}

// `dims` with its first axis `rows` long (a scatter's or gather's rows).
KnownVariable Rows(const KnownVariable& var, int64_t rows) {
  KnownVariable out = var;
  if (!out.dims.empty()) out.dims[0] = rows;
  return out;
}

// An initializer for a variable of `dtype`.
v1::Initializer FuzzInitializer(FuzzInput& in, DType dtype) {
  v1::Initializer init;
  init.set_kind(static_cast<v1::Initializer::Kind>(
      in.InRange(0, 15) == 0 ? in.Pick({-1, 12, 99}) : in.InRange(0, 11)));
  if (init.kind() == v1::Initializer::CONSTANT || in.InRange(0, 15) == 0) {
    const KnownVariable scalar{"", dtype, {}, 0};
    *init.mutable_value() = FuzzTensor(in, &scalar);
  }
  if (in.Bool()) init.set_seed(in.Integral<int64_t>());
  const int optional_fields = in.InRange(0, 3);
  for (int i = 0; i < optional_fields; ++i) {
    const double value =
        in.InRange(0, 3) == 0 ? in.Double() : in.InRange(1, 4) * 0.25;
    switch (in.InRange(0, 5)) {
      case 0:
        init.set_mean(value);
        break;
      case 1:
        init.set_stddev(value);
        break;
      case 2:
        init.set_minval(value);
        break;
      case 3:
        init.set_maxval(value);
        break;
      case 4:
        init.set_scale(value);
        break;
      default:
        init.set_gain(value);
        break;
    }
  }
  if (in.InRange(0, 3) == 0) {
    init.set_mode(static_cast<v1::Initializer::FanMode>(in.InRange(-1, 3)));
    init.set_distribution(
        static_cast<v1::Initializer::Distribution>(in.InRange(-1, 3)));
  }
  return init;
}

int64_t Count(FuzzInput& in) {
  return in.Pick<int64_t>({0, 1, 2, 3, 4, -1, 1000, int64_t{1} << 40});
}

int32_t Axis(FuzzInput& in) { return in.Pick<int32_t>({0, 0, 1, 2, -1, 9}); }

v1::Partitioner FuzzPartitioner(FuzzInput& in) {
  v1::Partitioner p;
  switch (in.InRange(0, 3)) {
    case 0:
      p.mutable_fixed_size()->set_num_shards(Count(in));
      p.mutable_fixed_size()->set_axis(Axis(in));
      break;
    case 1:
      p.mutable_min_max_variable()->set_max_partitions(Count(in));
      p.mutable_min_max_variable()->set_axis(Axis(in));
      p.mutable_min_max_variable()->set_min_slice_size(Count(in));
      break;
    case 2:
      p.mutable_variable_axis_size()->set_max_shard_bytes(Count(in));
      p.mutable_variable_axis_size()->set_axis(Axis(in));
      p.mutable_variable_axis_size()->set_max_shards(Count(in));
      break;
    default: {
      const int n = in.InRange(0, 4);
      for (int i = 0; i < n; ++i) {
        p.mutable_explicit_()->add_partitions(Count(in));
      }
      break;
    }
  }
  return p;
}

v1::Optimizer FuzzOptimizer(FuzzInput& in) {
  v1::Optimizer opt;
  opt.set_learning_rate(in.InRange(0, 3) != 0 ? 0.1 : in.Double());
  switch (in.InRange(0, 6)) {
    case 0:
      opt.mutable_gradient_descent();
      break;
    case 1:
      opt.mutable_momentum()->set_momentum(in.Double());
      opt.mutable_momentum()->set_use_nesterov(in.Bool());
      break;
    case 2:
      if (in.Bool()) {
        opt.mutable_adagrad()->set_initial_accumulator_value(in.Double());
      } else {
        opt.mutable_adagrad();
      }
      break;
    case 3:
      opt.mutable_adam();
      if (in.Bool()) opt.mutable_adam()->set_beta1(in.Double());
      if (in.Bool()) opt.mutable_adam()->set_epsilon(in.Double());
      // Beta powers by value, or read from a variable (maybe missing or not
      // a scalar).
      for (v1::ScalarInput* power :
           {opt.mutable_adam()->mutable_beta1_power(),
            opt.mutable_adam()->mutable_beta2_power()}) {
        if (in.Bool()) {
          power->set_value(in.Double());
        } else {
          power->set_variable(Segment(in));
        }
      }
      break;
    case 4:
      opt.mutable_rms_prop()->set_centered(in.Bool());
      if (in.Bool()) opt.mutable_rms_prop()->set_decay(in.Double());
      break;
    case 5:
      opt.mutable_ftrl();
      if (in.Bool()) opt.mutable_ftrl()->set_learning_rate_power(in.Double());
      opt.mutable_ftrl()->set_l1_regularization_strength(in.Double());
      break;
    default:
      break;  // no kind
  }
  if (in.InRange(0, 7) == 0) opt.set_name(Segment(in));
  if (in.InRange(0, 7) == 0) {
    v1::LearningRateSchedule* schedule = opt.mutable_schedule();
    if (in.Bool()) {
      schedule->mutable_global_step()->set_value(in.Double());
    } else {
      schedule->mutable_global_step()->set_variable(Segment(in));
    }
    if (in.Bool()) {
      schedule->mutable_exponential_decay()->set_decay_steps(in.Double());
      schedule->mutable_exponential_decay()->set_decay_rate(in.Double());
    } else {
      schedule->mutable_piecewise_constant()->add_values(in.Double());
    }
  }
  return opt;
}

v1::Update FuzzUpdate(FuzzInput& in, absl::Span<const KnownVariable> known) {
  v1::Update update;
  const KnownVariable* var =
      in.InRange(0, 4) != 0 ? PickKnown(in, known) : nullptr;
  update.set_name(var != nullptr ? var->name : FuzzName(in, known));
  if (in.InRange(0, 3) == 0) {
    const int64_t version = var != nullptr ? var->version : 1;
    update.set_expected_version(
        in.Pick<int64_t>({version, version, version + 1, 0, -1}));
  }
  switch (in.InRange(0, 15) == 0 ? 4 : in.InRange(0, 3)) {
    case 0:
      *update.mutable_assign() = FuzzTensor(in, var);
      break;
    case 1:
      *update.mutable_assign_add() = FuzzTensor(in, var);
      break;
    case 2: {
      v1::Scatter* scatter = update.mutable_scatter();
      *scatter->mutable_indices() = IndicesTensor(in, var);
      const int64_t n = scatter->indices().shape().dims(0);
      const KnownVariable rows =
          var != nullptr ? Rows(*var, n) : KnownVariable{};
      *scatter->mutable_rows() =
          FuzzTensor(in, var != nullptr ? &rows : nullptr);
      scatter->set_mode(static_cast<v1::Scatter::Mode>(in.InRange(0, 2)));
      break;
    }
    case 3: {
      v1::ApplyGradient* apply = update.mutable_apply_gradient();
      *apply->mutable_optimizer() = FuzzOptimizer(in);
      if (in.Bool()) {
        *apply->mutable_indices() = IndicesTensor(in, var);
        const KnownVariable rows =
            var != nullptr ? Rows(*var, apply->indices().shape().dims(0))
                           : KnownVariable{};
        *apply->mutable_gradient() =
            FuzzTensor(in, var != nullptr ? &rows : nullptr);
      } else {
        *apply->mutable_gradient() = FuzzTensor(in, var);
      }
      break;
    }
    default:
      break;  // no op
  }
  return update;
}

}  // namespace

std::string FuzzName(FuzzInput& in, absl::Span<const KnownVariable> known) {
  switch (in.InRange(0, 15)) {
    case 0:
      return in.Bytes(24);
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
      if (const KnownVariable* var = PickKnown(in, known)) {
        return in.Bool() ? var->name
                         : absl::StrCat(var->name, "/", Segment(in));
      }
      [[fallthrough]];
    default: {
      std::vector<std::string> segments(in.InRange(1, 3));
      for (std::string& s : segments) s = Segment(in);
      std::string name = absl::StrJoin(segments, "/");
      if (in.InRange(0, 15) == 0) name = absl::StrCat("/", name);
      if (in.InRange(0, 15) == 0) name.append("/");
      return name;
    }
  }
}

v1::Tensor FuzzTensor(FuzzInput& in, const KnownVariable* like) {
  v1::Tensor tensor;
  const bool same_dtype = like != nullptr && in.InRange(0, 15) != 0;
  const bool same_dims = like != nullptr && in.InRange(0, 15) != 0;
  tensor.set_dtype(same_dtype ? like->dtype : AnyDType(in));
  const std::vector<int64_t> dims = same_dims ? like->dims : Dims(in);
  if (!dims.empty() || in.Bool()) {
    tensor.mutable_shape()->mutable_dims()->Assign(dims.begin(), dims.end());
  }
  const int64_t expected = ExpectedBytes(tensor.dtype(), dims);
  if (expected >= 0 && in.InRange(0, 15) != 0) {
    tensor.set_content(Content(in, expected));
  } else if (expected >= 0 && in.Bool()) {
    tensor.set_content(Content(in, expected + in.Pick<int64_t>({1, 2, 7})));
  } else {
    tensor.set_content(in.Bytes(16));
  }
  return tensor;
}

v1::GetVariableRequest FuzzGetVariable(FuzzInput& in,
                                       absl::Span<const KnownVariable> known) {
  v1::GetVariableRequest request;
  const KnownVariable* var =
      in.InRange(0, 2) == 0 ? PickKnown(in, known) : nullptr;
  request.set_name(var != nullptr ? var->name : FuzzName(in, known));
  request.set_mode(static_cast<v1::ReuseMode>(
      in.InRange(0, 15) == 0
          ? in.Pick<int>({v1::REUSE_MODE_UNSPECIFIED, 7, -1})
          : in.Pick<int>({v1::CREATE, v1::REUSE, v1::AUTO_REUSE})));
  if (in.InRange(0, 5) != 0) {
    std::vector<int64_t> dims =
        var != nullptr && in.Bool() ? var->dims : Dims(in);
    if (!dims.empty() && in.InRange(0, 5) == 0) dims[0] = -1;
    request.mutable_shape()->mutable_dims()->Assign(dims.begin(), dims.end());
  }
  request.set_dtype(var != nullptr && in.Bool() ? var->dtype : AnyDType(in));
  if (in.InRange(0, 2) != 0) {
    *request.mutable_initializer() = FuzzInitializer(in, request.dtype());
  }
  if (in.InRange(0, 3) == 0) request.set_trainable(in.Bool());
  if (in.InRange(0, 3) == 0) {
    *request.mutable_partitioner() = FuzzPartitioner(in);
  }
  return request;
}

v1::BatchUpdateRequest FuzzBatchUpdate(FuzzInput& in,
                                       absl::Span<const KnownVariable> known) {
  v1::BatchUpdateRequest request;
  const int n = in.InRange(0, 15) == 0 ? 0 : in.Pick({1, 1, 1, 2, 2, 3});
  for (int i = 0; i < n; ++i) *request.add_updates() = FuzzUpdate(in, known);
  if (in.InRange(0, 3) == 0) {
    const bool valid = in.InRange(0, 7) != 0;
    request.mutable_id()->set_client_id(
        valid ? in.Pick<std::string>({"c", "d"})
              : in.Pick<std::string>({"", std::string(300, 'c')}));
    request.mutable_id()->set_sequence(valid ? in.InRange<int64_t>(1, 4)
                                             : in.Pick<int64_t>({0, -1}));
  }
  request.set_return_values(in.Bool());
  return request;
}

v1::GatherRequest FuzzGather(FuzzInput& in,
                             absl::Span<const KnownVariable> known) {
  v1::GatherRequest request;
  const KnownVariable* var =
      in.InRange(0, 3) != 0 ? PickKnown(in, known) : nullptr;
  request.set_name(var != nullptr ? var->name : FuzzName(in, known));
  *request.mutable_indices() =
      in.InRange(0, 5) != 0 ? IndicesTensor(in, var) : FuzzTensor(in, nullptr);
  return request;
}

v1::ListVariablesRequest FuzzList(FuzzInput& in,
                                  absl::Span<const KnownVariable> known) {
  v1::ListVariablesRequest request;
  if (in.Bool()) request.set_scope(FuzzName(in, known));
  request.set_recursive(in.Bool());
  request.set_page_size(in.Pick<int32_t>({0, 0, 1, 2, -1, 1 << 30}));
  if (in.InRange(0, 3) == 0) {
    request.set_page_token(in.Bool() ? FuzzName(in, known) : in.Bytes(8));
  }
  return request;
}

v1::BatchReadRequest FuzzBatchRead(FuzzInput& in,
                                   absl::Span<const KnownVariable> known) {
  v1::BatchReadRequest request;
  const int n = in.InRange(0, 3);
  for (int i = 0; i < n; ++i) request.add_names(FuzzName(in, known));
  if (in.Bool()) request.set_scope(FuzzName(in, known));
  return request;
}

}  // namespace varscope::fuzz
