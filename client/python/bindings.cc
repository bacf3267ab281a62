// varscope._varscope: pybind11 bindings of the C++ client (Client, scopes,
// GetVariable, Variable) and of the common initializer and partitioner code,
// numpy in and out. The pure-Python package `varscope` wraps this module; it
// is not a public API of its own.
//
// Every RPC runs with the GIL released. A non-OK absl::Status is raised as
// the varscope.errors exception of its code, its message unchanged.

#include <malloc.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/admin_client.h"
#include "client/client.h"
#include "client/tensor_bundle.h"
#include "client/variable.h"
#include "client/variable_scope.h"
#include "common/dtype.h"
#include "common/initializers.h"
#include "common/learning_rate.h"
#include "common/mutex_checks.h"
#include "common/partitioners.h"
#include "common/status.h"
#include "common/tensor.h"
#include "common/version.h"

namespace varscope {
namespace {

namespace py = pybind11;

// A non-OK status on its way to Python (see the translator in the module).
class StatusError : public std::exception {
 public:
  explicit StatusError(absl::Status status)
      : status_(std::move(status)), what_(status_.ToString()) {}
  const absl::Status& status() const { return status_; }
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  absl::Status status_;
  std::string what_;
};

void ThrowIfError(const absl::Status& status) {
  if (!status.ok()) throw StatusError(status);
}

template <typename T>
T ValueOrThrow(absl::StatusOr<T> result) {
  ThrowIfError(result.status());
  return *std::move(result);
}

// Runs `call` (returning a StatusOr) with the GIL released; returns its value
// or raises its error once the GIL is held again. `call` must not touch
// Python objects.
template <typename Call>
auto WithoutGil(Call call) {
  auto result = [&] {
    py::gil_scoped_release release;
    return call();
  }();
  return ValueOrThrow(std::move(result));
}

// Makes glibc keep freed tensor-sized blocks for reuse instead of giving
// them back to the kernel: every call moves its tensor through a few
// buffers of its size (the request, gRPC's slices, the reply), and by
// default blocks over 128 KiB are mmap'd and unmapped per use, so each call
// page-faults its buffers afresh, which cost over 10x the copying itself
// (bench/RESULTS.md). Up to 256 MiB of free memory stays in the process.
// Left alone when the user tuned malloc (MALLOC_*_ or GLIBC_TUNABLES).
void KeepTensorBuffers() {
  for (const char* tuned : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                            "MALLOC_TOP_PAD_", "GLIBC_TUNABLES"}) {
    if (std::getenv(tuned) != nullptr) return;
  }
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

DType ToDType(int value) {
  if (!IsSupportedDType(value)) {
    throw py::value_error(absl::StrCat("Unsupported dtype enum ", value));
  }
  return static_cast<DType>(value);
}

// The numpy dtype that holds values of `dtype` in Python: the same type,
// except float32 for bfloat16 (numpy has no bfloat16).
py::dtype NumpyDType(DType dtype) {
  return py::dtype(
      std::string(DTypeName(dtype == v1::DT_BFLOAT16 ? v1::DT_FLOAT : dtype)));
}

// numpy's name of a dtype, e.g. "float32".
std::string NumpyName(const py::dtype& dtype) {
  return dtype.attr("name").cast<std::string>();
}

// `tensor` as a numpy array. The array takes over the tensor's bytes (they
// stay where the reply put them: no copy, no fresh pages) except for
// bfloat16, which widens to float32.
py::array ToArray(Tensor tensor) {
  const std::vector<py::ssize_t> shape(tensor.dims().begin(),
                                       tensor.dims().end());
  if (tensor.dtype() == v1::DT_BFLOAT16) {
    py::array out(NumpyDType(tensor.dtype()), shape);
    float* dst = static_cast<float*>(out.mutable_data());
    for (const BFloat16 value : tensor.flat<BFloat16>()) {
      *dst++ = BFloat16ToFloat(value.bits);
    }
    return out;
  }
  const py::dtype dtype = NumpyDType(tensor.dtype());
  auto* bytes = new std::string(tensor.ReleaseBytes());
  const py::capsule owner(bytes,
                          [](void* p) { delete static_cast<std::string*>(p); });
  // An owned base makes the array writable, as a freshly allocated one is.
  return py::array(dtype, shape, bytes->data(), owner);
}

// `value` with its elements in row-major order (the array itself when they
// are), after checking that its numpy dtype is NumpyDType(dtype); TypeError
// otherwise.
py::array RowMajor(const py::array& value, DType dtype) {
  const py::dtype expected = NumpyDType(dtype);
  if (value.dtype().kind() != expected.kind() ||
      value.dtype().itemsize() != expected.itemsize()) {
    throw py::type_error(
        absl::StrCat("Expected a numpy array of dtype ", NumpyName(expected),
                     " for a tensor of dtype ", DTypeName(dtype), ", got ",
                     NumpyName(value.dtype())));
  }
  return py::array::ensure(value, py::array::c_style);
}

// A tensor of `dtype` holding the elements of `value`, whose numpy dtype must
// be NumpyDType(dtype) (float32 values are rounded for bfloat16); TypeError
// otherwise.
Tensor ToTensor(const py::array& value, DType dtype) {
  const py::array array = RowMajor(value, dtype);
  std::vector<int64_t> dims(array.shape(), array.shape() + array.ndim());
  if (dtype != v1::DT_BFLOAT16) {
    return ValueOrThrow(
        Tensor::FromBytes(dtype, std::move(dims),
                          std::string(static_cast<const char*>(array.data()),
                                      static_cast<size_t>(array.nbytes()))));
  }
  Tensor tensor(dtype, std::move(dims));
  const float* src = static_cast<const float*>(array.data());
  for (BFloat16& out : tensor.mutable_flat<BFloat16>()) {
    out.bits = FloatToBFloat16(*src++);
  }
  return tensor;
}

// As ToTensor, without copying the elements: the tensor holds the array
// (bfloat16 is copied, rounded from float32).
SharedTensor ToSharedTensor(const py::array& value, DType dtype) {
  if (dtype == v1::DT_BFLOAT16) return SharedTensor::Of(ToTensor(value, dtype));
  const py::array array = RowMajor(value, dtype);
  // gRPC may let go of the bytes on one of its threads.
  std::shared_ptr<const void> owner(new py::array(array),
                                    [](const py::array* held) {
                                      if (!Py_IsInitialized()) return;
                                      py::gil_scoped_acquire gil;
                                      delete held;
                                    });
  return ValueOrThrow(SharedTensor::Make(
      dtype, std::vector<int64_t>(array.shape(), array.shape() + array.ndim()),
      absl::string_view(static_cast<const char*>(array.data()),
                        static_cast<size_t>(array.nbytes())),
      std::move(owner)));
}

// A tensor of the dtype whose name is the numpy array's (see ParseDType).
Tensor ToTensor(const py::array& value) {
  return ToTensor(value, ValueOrThrow(ParseDType(NumpyName(value.dtype()))));
}

// Parses the name of a value of a protobuf enum, e.g. "RANDOM_NORMAL".
template <typename Enum>
Enum ParseEnum(const std::string& name,
               bool (*parse)(const std::string&, Enum*)) {
  Enum value;
  if (!parse(name, &value)) {
    throw py::value_error(absl::StrCat("Unknown enum value name ", name));
  }
  return value;
}

v1::Initializer MakeInitializer(
    const std::string& kind, const std::optional<py::array>& value,
    std::optional<double> mean, std::optional<double> stddev,
    std::optional<double> minval, std::optional<double> maxval,
    std::optional<double> scale, std::optional<double> gain,
    const std::string& mode, const std::string& distribution,
    std::optional<int64_t> seed) {
  v1::Initializer spec;
  spec.set_kind(ParseEnum(kind, &v1::Initializer::Kind_Parse));
  if (value.has_value()) TensorToProto(ToTensor(*value), spec.mutable_value());
  if (mean.has_value()) spec.set_mean(*mean);
  if (stddev.has_value()) spec.set_stddev(*stddev);
  if (minval.has_value()) spec.set_minval(*minval);
  if (maxval.has_value()) spec.set_maxval(*maxval);
  if (scale.has_value()) spec.set_scale(*scale);
  if (gain.has_value()) spec.set_gain(*gain);
  spec.set_mode(ParseEnum(mode, &v1::Initializer::FanMode_Parse));
  spec.set_distribution(
      ParseEnum(distribution, &v1::Initializer::Distribution_Parse));
  if (seed.has_value()) spec.set_seed(*seed);
  return spec;
}

// The value the server would give a variable (or, with `offset` and `dims`,
// one part of it) of `full_dims` made with `spec`; a random seed when the
// spec has none.
py::array InitialValueOf(const v1::Initializer& spec, int dtype,
                         const std::vector<int64_t>& full_dims,
                         std::optional<std::vector<int64_t>> offset,
                         std::optional<std::vector<int64_t>> dims) {
  const int64_t seed =
      spec.has_seed()
          ? spec.seed()
          : absl::Uniform<int64_t>(absl::BitGen(), 0,
                                   std::numeric_limits<int64_t>::max());
  const DType type = ToDType(dtype);
  const std::vector<int64_t> part_offset =
      offset.value_or(std::vector<int64_t>(full_dims.size(), 0));
  const std::vector<int64_t> part_dims = dims.value_or(full_dims);
  return ToArray(WithoutGil([&] {
    return InitialValue(spec, seed, type, full_dims, part_offset, part_dims);
  }));
}

// Applies `op` (Variable::Assign or AssignAdd), only at `expected_version`
// if given; returns the new value when `return_value`, else None.
py::object Update(const Variable& variable, const py::array& value,
                  bool return_value, std::optional<int64_t> expected_version,
                  absl::StatusOr<UpdateResult> (Variable::*op)(
                      SharedTensor, const UpdateOptions&) const) {
  SharedTensor tensor = ToSharedTensor(value, variable.dtype());
  UpdateResult result = WithoutGil([&] {
    return (variable.*op)(std::move(tensor),
                          UpdateOptions{.expected_version = expected_version,
                                        .return_value = return_value});
  });
  if (!result.value.has_value()) return py::none();
  return ToArray(*std::move(result.value));
}

// A part's place in its partitioned variable, (full name, full shape,
// offset), or None for a variable that is not a part.
py::object SliceOf(const v1::VariableInfo& info) {
  if (!info.has_slice()) return py::none();
  const v1::SliceInfo& slice = info.slice();
  return py::make_tuple(slice.full_name(),
                        std::vector<int64_t>(slice.full_shape().dims().begin(),
                                             slice.full_shape().dims().end()),
                        std::vector<int64_t>(slice.var_offset().begin(),
                                             slice.var_offset().end()));
}

// The metadata of every variable in `scope` (all below it when `recursive`,
// else its direct children), in name order.
std::vector<v1::VariableInfo> ListInfos(Client& client,
                                        const std::string& scope,
                                        bool recursive) {
  v1::ListVariablesRequest request;
  request.set_scope(scope);
  request.set_recursive(recursive);
  return WithoutGil([&]() -> absl::StatusOr<std::vector<v1::VariableInfo>> {
    std::vector<v1::VariableInfo> out;
    VS_RETURN_IF_ERROR(client.ForEachPage(
        std::move(request), [&](v1::ListVariablesResponse& page) {
          for (auto& entry : *page.mutable_entries()) {
            if (!entry.is_scope()) {
              out.push_back(std::move(*entry.mutable_variable()));
            }
          }
          return absl::OkStatus();
        }));
    return out;
  });
}

// (name, shape) of every variable ListInfos lists.
std::vector<std::pair<std::string, std::vector<int64_t>>> ListVariables(
    Client& client, const std::string& scope, bool recursive) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const v1::VariableInfo& info : ListInfos(client, scope, recursive)) {
    out.emplace_back(info.name(),
                     std::vector<int64_t>(info.shape().dims().begin(),
                                          info.shape().dims().end()));
  }
  return out;
}

// Handles on every variable ListInfos lists (a partitioned variable's parts
// one by one), without a GetVariable call each.
std::vector<Variable> ListHandles(const std::shared_ptr<Client>& client,
                                  const std::string& scope, bool recursive) {
  std::vector<Variable> out;
  for (v1::VariableInfo& info : ListInfos(*client, scope, recursive)) {
    v1::GetVariableResponse response;
    *response.mutable_variable() = std::move(info);
    out.emplace_back(client, std::move(response));
  }
  return out;
}

// A scalar an optimizer reads: a variable's name, or a value.
v1::ScalarInput MakeScalarInput(const py::object& source) {
  v1::ScalarInput input;
  if (py::isinstance<py::str>(source)) {
    input.set_variable(source.cast<std::string>());
  } else {
    input.set_value(source.cast<double>());
  }
  return input;
}

v1::LearningRateSchedule MakeSchedule(const std::string& kind,
                                      const py::object& global_step,
                                      const py::kwargs& params) {
  v1::LearningRateSchedule spec;
  *spec.mutable_global_step() = MakeScalarInput(global_step);
  auto get = [&](const char* name) { return params[name].cast<double>(); };
  if (kind == "exponential_decay") {
    auto* e = spec.mutable_exponential_decay();
    e->set_decay_steps(get("decay_steps"));
    e->set_decay_rate(get("decay_rate"));
    e->set_staircase(params["staircase"].cast<bool>());
  } else if (kind == "piecewise_constant") {
    auto* p = spec.mutable_piecewise_constant();
    for (double b : params["boundaries"].cast<std::vector<double>>()) {
      p->add_boundaries(b);
    }
    for (double v : params["values"].cast<std::vector<double>>()) {
      p->add_values(v);
    }
  } else if (kind == "polynomial_decay") {
    auto* p = spec.mutable_polynomial_decay();
    p->set_decay_steps(get("decay_steps"));
    p->set_end_learning_rate(get("end_learning_rate"));
    p->set_power(get("power"));
    p->set_cycle(params["cycle"].cast<bool>());
  } else if (kind == "cosine_decay") {
    auto* c = spec.mutable_cosine_decay();
    c->set_decay_steps(get("decay_steps"));
    c->set_alpha(get("alpha"));
  } else {
    throw py::value_error(absl::StrCat("Unknown schedule ", kind));
  }
  const absl::Status valid = ValidateSchedule(spec);
  if (!valid.ok()) throw py::value_error(std::string(valid.message()));
  return spec;
}

v1::Constraint MakeConstraint(const std::string& kind, double min_value,
                              double max_value, double rate,
                              const std::vector<int32_t>& axis) {
  v1::Constraint spec;
  if (kind == "NonNeg") {
    spec.mutable_non_neg();
  } else if (kind == "MaxNorm") {
    spec.mutable_max_norm()->set_max_value(max_value);
    spec.mutable_max_norm()->mutable_axis()->Assign(axis.begin(), axis.end());
  } else if (kind == "UnitNorm") {
    spec.mutable_unit_norm()->mutable_axis()->Assign(axis.begin(), axis.end());
  } else if (kind == "MinMaxNorm") {
    auto* m = spec.mutable_min_max_norm();
    m->set_min_value(min_value);
    m->set_max_value(max_value);
    m->set_rate(rate);
    m->mutable_axis()->Assign(axis.begin(), axis.end());
  } else {
    throw py::value_error(absl::StrCat("Unknown constraint ", kind));
  }
  return spec;
}

// A variable's constraint as (kind, min_value, max_value, rate, axis), or
// None.
py::object ConstraintOf(const v1::VariableInfo& info) {
  if (!info.has_constraint()) return py::none();
  const v1::Constraint& c = info.constraint();
  auto axes = [](const auto& axis) {
    return std::vector<int32_t>(axis.begin(), axis.end());
  };
  switch (c.kind_case()) {
    case v1::Constraint::kNonNeg:
      return py::make_tuple("NonNeg", 0.0, 0.0, 0.0, std::vector<int32_t>());
    case v1::Constraint::kMaxNorm:
      return py::make_tuple("MaxNorm", 0.0, c.max_norm().max_value(), 0.0,
                            axes(c.max_norm().axis()));
    case v1::Constraint::kUnitNorm:
      return py::make_tuple("UnitNorm", 0.0, 0.0, 0.0,
                            axes(c.unit_norm().axis()));
    case v1::Constraint::kMinMaxNorm:
      return py::make_tuple("MinMaxNorm", c.min_max_norm().min_value(),
                            c.min_max_norm().max_value(),
                            c.min_max_norm().rate(),
                            axes(c.min_max_norm().axis()));
    case v1::Constraint::KIND_NOT_SET:
      break;
  }
  return py::none();
}

v1::Optimizer MakeOptimizer(const std::string& kind, double learning_rate,
                            const py::kwargs& params) {
  v1::Optimizer spec;
  spec.set_learning_rate(learning_rate);
  if (params.contains("name")) {
    spec.set_name(params["name"].cast<std::string>());
  }
  if (params.contains("schedule")) {
    *spec.mutable_schedule() =
        params["schedule"].cast<v1::LearningRateSchedule>();
  }
  auto take = [&](const char* name) -> std::optional<py::object> {
    if (!params.contains(name)) return std::nullopt;
    py::object value = params[name];
    return value;
  };
  auto set = [&](const char* name, auto setter) {
    if (std::optional<py::object> value = take(name)) {
      setter(value->cast<double>());
    }
  };
  if (kind == "GradientDescent") {
    spec.mutable_gradient_descent();
  } else if (kind == "Momentum") {
    auto* m = spec.mutable_momentum();
    set("momentum", [&](double v) { m->set_momentum(v); });
    if (auto v = take("use_nesterov")) m->set_use_nesterov(v->cast<bool>());
  } else if (kind == "Adagrad") {
    auto* m = spec.mutable_adagrad();
    set("initial_accumulator_value",
        [&](double v) { m->set_initial_accumulator_value(v); });
  } else if (kind == "Adam") {
    auto* m = spec.mutable_adam();
    set("beta1", [&](double v) { m->set_beta1(v); });
    set("beta2", [&](double v) { m->set_beta2(v); });
    set("epsilon", [&](double v) { m->set_epsilon(v); });
    if (auto v = take("beta1_power")) {
      *m->mutable_beta1_power() = MakeScalarInput(*v);
    }
    if (auto v = take("beta2_power")) {
      *m->mutable_beta2_power() = MakeScalarInput(*v);
    }
  } else if (kind == "RMSProp") {
    auto* m = spec.mutable_rms_prop();
    set("decay", [&](double v) { m->set_decay(v); });
    set("momentum", [&](double v) { m->set_momentum(v); });
    set("epsilon", [&](double v) { m->set_epsilon(v); });
    if (auto v = take("centered")) m->set_centered(v->cast<bool>());
  } else if (kind == "Ftrl") {
    auto* m = spec.mutable_ftrl();
    set("learning_rate_power",
        [&](double v) { m->set_learning_rate_power(v); });
    set("initial_accumulator_value",
        [&](double v) { m->set_initial_accumulator_value(v); });
    set("l1_regularization_strength",
        [&](double v) { m->set_l1_regularization_strength(v); });
    set("l2_regularization_strength",
        [&](double v) { m->set_l2_regularization_strength(v); });
  } else {
    throw py::value_error(absl::StrCat("Unknown optimizer ", kind));
  }
  return spec;
}

// One update of a batch: `kind` is "assign", "assign_add", "assign_mul",
// "scatter_add",
// "scatter_update" or "apply_gradient"; `value` has the variable's dtype;
// `indices` (1-D int32 or int64) makes a scatter or a sparse gradient.
v1::Update MakeUpdate(const std::string& name, const std::string& kind,
                      const py::array& value, int dtype,
                      const std::optional<py::array>& indices,
                      const std::optional<v1::Optimizer>& optimizer,
                      std::optional<int64_t> expected_version) {
  v1::Update update;
  update.set_name(name);
  if (expected_version.has_value()) {
    update.set_expected_version(*expected_version);
  }
  Tensor tensor = ToTensor(value, ToDType(dtype));
  if (kind == "assign") {
    TensorToProto(std::move(tensor), update.mutable_assign());
  } else if (kind == "assign_add") {
    TensorToProto(std::move(tensor), update.mutable_assign_add());
  } else if (kind == "assign_mul") {
    TensorToProto(std::move(tensor), update.mutable_assign_mul());
  } else if ((kind == "scatter_add" || kind == "scatter_update") &&
             indices.has_value()) {
    v1::Scatter* scatter = update.mutable_scatter();
    scatter->set_mode(kind == "scatter_add" ? v1::Scatter::ADD
                                            : v1::Scatter::UPDATE);
    TensorToProto(ToTensor(*indices), scatter->mutable_indices());
    TensorToProto(std::move(tensor), scatter->mutable_rows());
  } else if (kind == "apply_gradient" && optimizer.has_value()) {
    v1::ApplyGradient* apply = update.mutable_apply_gradient();
    *apply->mutable_optimizer() = *optimizer;
    if (indices.has_value()) {
      TensorToProto(ToTensor(*indices), apply->mutable_indices());
    }
    TensorToProto(std::move(tensor), apply->mutable_gradient());
  } else {
    throw py::value_error(absl::StrCat("Bad update kind ", kind));
  }
  return update;
}

// Moves the UpdateSpecs of `updates` (a list) into `out`: they are left
// empty, so a spec is sent once.
void TakeUpdates(const py::list& updates,
                 google::protobuf::RepeatedPtrField<v1::Update>* out) {
  for (const py::handle item : updates) {
    *out->Add() = std::move(item.cast<v1::Update&>());
  }
}

// WithConsistentCut over `client`'s shards, calling the Python
// `action(paused)` (with the GIL) while they are paused, `paused` being a
// client of the same shards and options whose changes pass the pause; an
// exception it raises propagates once every shard resumed. Returns (steps
// completed, [abandoned steps]).
py::tuple ConsistentCut(Client& client, const py::function& action,
                        const std::string& reason, double lease,
                        double timeout) {
  CutOptions options;
  options.reason = reason;
  options.lease = absl::Seconds(lease);
  Cut taken;
  std::optional<py::error_already_set> raised;
  const absl::Status status = [&] {
    py::gil_scoped_release release;
    return WithConsistentCut(
        client, absl::Seconds(timeout), options,
        [&](const Cut& cut) -> absl::Status {
          taken = cut;
          ClientOptions paused_options = client.options();
          paused_options.pause_id = cut.pause_id;
          std::shared_ptr<Client> paused = Client::Connect(
              absl::StrJoin(client.addresses(), ","), paused_options);
          py::gil_scoped_acquire acquire;
          try {
            action(paused);
          } catch (py::error_already_set& error) {
            raised = std::move(error);
            return absl::CancelledError("The action raised");
          }
          return absl::OkStatus();
        });
  }();
  if (raised.has_value()) throw std::move(*raised);
  ThrowIfError(status);
  return py::make_tuple(taken.completed, taken.abandoned);
}

}  // namespace
}  // namespace varscope

PYBIND11_MODULE(_varscope, m) {
  using namespace varscope;  // NOLINT(build/namespaces)

  m.doc() = "Bindings of the Varscope C++ client; use the varscope package.";
  KeepTensorBuffers();
  SkipMutexDeadlockDetection();
  m.attr("__version__") = std::string(Version());

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      const py::object error =
          py::module_::import("varscope.errors")
              .attr("_from_status")(static_cast<int>(e.status().code()),
                                    std::string(e.status().message()));
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.ptr())),
                      error.ptr());
    }
  });

  m.def(
      "dtypes",
      [] {
        std::vector<py::tuple> out;
        for (const DType dtype : kAllDTypes) {
          out.push_back(py::make_tuple(
              static_cast<int>(dtype), std::string(DTypeName(dtype)),
              DTypeSize(dtype), IsFloating(dtype), IsInteger(dtype)));
        }
        return out;
      },
      "(enum, name, size, is_floating, is_integer) of every supported dtype.");
  m.def(
      "parse_dtype",
      [](const std::string& name) {
        return static_cast<int>(ValueOrThrow(ParseDType(name)));
      },
      py::arg("name"), "The enum of a TensorFlow or numpy dtype name.");

  py::class_<v1::Initializer>(m, "InitializerSpec",
                              "A server-side initializer (v1.Initializer).")
      .def(py::init(&MakeInitializer), py::kw_only(), py::arg("kind"),
           py::arg("value") = py::none(), py::arg("mean") = py::none(),
           py::arg("stddev") = py::none(), py::arg("minval") = py::none(),
           py::arg("maxval") = py::none(), py::arg("scale") = py::none(),
           py::arg("gain") = py::none(), py::arg("mode") = "FAN_IN",
           py::arg("distribution") = "DIST_TRUNCATED_NORMAL",
           py::arg("seed") = py::none())
      .def("__repr__", [](const v1::Initializer& spec) {
        return absl::StrCat("InitializerSpec(", spec.ShortDebugString(), ")");
      });
  m.def("initial_value", &InitialValueOf, py::arg("spec"), py::arg("dtype"),
        py::arg("full_shape"), py::arg("offset") = py::none(),
        py::arg("shape") = py::none());

  py::class_<v1::Partitioner>(m, "PartitionerSpec",
                              "A server-side partitioner (v1.Partitioner).")
      .def_static(
          "fixed_size",
          [](int64_t num_shards, int32_t axis) {
            v1::Partitioner spec;
            spec.mutable_fixed_size()->set_num_shards(num_shards);
            spec.mutable_fixed_size()->set_axis(axis);
            return spec;
          },
          py::arg("num_shards"), py::arg("axis"))
      .def_static(
          "min_max_variable",
          [](int64_t max_partitions, int32_t axis, int64_t min_slice_size) {
            v1::Partitioner spec;
            auto* p = spec.mutable_min_max_variable();
            p->set_max_partitions(max_partitions);
            p->set_axis(axis);
            p->set_min_slice_size(min_slice_size);
            return spec;
          },
          py::arg("max_partitions"), py::arg("axis"), py::arg("min_slice_size"))
      .def_static(
          "variable_axis_size",
          [](int64_t max_shard_bytes, int32_t axis, int64_t max_shards) {
            v1::Partitioner spec;
            auto* p = spec.mutable_variable_axis_size();
            p->set_max_shard_bytes(max_shard_bytes);
            p->set_axis(axis);
            p->set_max_shards(max_shards);
            return spec;
          },
          py::arg("max_shard_bytes"), py::arg("axis"), py::arg("max_shards"))
      .def_static(
          "explicit",
          [](const std::vector<int64_t>& partitions) {
            v1::Partitioner spec;
            spec.mutable_explicit_()->mutable_partitions()->Assign(
                partitions.begin(), partitions.end());
            return spec;
          },
          py::arg("partitions"))
      .def("__repr__", [](const v1::Partitioner& spec) {
        return absl::StrCat("PartitionerSpec(", spec.ShortDebugString(), ")");
      });
  m.def(
      "compute_partitions",
      [](const v1::Partitioner& spec, const std::vector<int64_t>& shape,
         int dtype) {
        return ValueOrThrow(ComputePartitions(spec, shape, ToDType(dtype)));
      },
      py::arg("spec"), py::arg("shape"), py::arg("dtype"));

  py::class_<Client, std::shared_ptr<Client>>(m, "Client")
      .def(
          py::init([](const std::string& address, double timeout,
                      double retry_timeout, std::optional<int> max_attempts,
                      std::string tls_root_certs, std::string auth_token,
                      std::string tls_cert_chain, std::string tls_private_key) {
            if (!(timeout > 0) || !(retry_timeout >= 0) ||
                max_attempts.value_or(1) < 1) {
              throw py::value_error(
                  "timeout must be positive, retry_timeout at least 0 and "
                  "max_attempts at least 1");
            }
            ClientOptions options;
            options.timeout = absl::Seconds(timeout);
            options.retry_timeout = absl::Seconds(retry_timeout);
            if (max_attempts) options.max_attempts = *max_attempts;
            options.security.tls_root_certs = std::move(tls_root_certs);
            options.security.auth_token = std::move(auth_token);
            options.security.tls_cert_chain = std::move(tls_cert_chain);
            options.security.tls_private_key = std::move(tls_private_key);
            return std::shared_ptr<Client>(Client::Connect(address, options));
          }),
          py::arg("address"), py::kw_only(), py::arg("timeout"),
          py::arg("retry_timeout"), py::arg("max_attempts"),
          py::arg("tls_root_certs"), py::arg("auth_token"),
          py::arg("tls_cert_chain") = "", py::arg("tls_private_key") = "")
      .def("check_cluster",
           [](Client& client) {
             absl::Status status;
             {
               py::gil_scoped_release release;
               status = client.CheckCluster();
             }
             ThrowIfError(status);
           })
      .def("list_variables", &ListVariables, py::arg("scope"),
           py::arg("recursive"))
      .def("list_handles", &ListHandles, py::arg("scope"), py::arg("recursive"))
      .def(
          "shard_of",
          [](const Client& client, const std::string& name) {
            return client.ShardFor(name);
          },
          py::arg("name"), "The index of the shard holding `name`.")
      .def("shard_count",
           [](const Client& client) {
             return static_cast<int>(client.addresses().size());
           })
      .def("consistent_cut", &ConsistentCut, py::arg("action"),
           py::arg("reason"), py::arg("lease"), py::arg("timeout"),
           "Calls action(paused) at one consistent cut of the cluster "
           "(WithConsistentCut in client/admin_client.h): every shard "
           "paused, steps half applied completed; `paused` is a client of "
           "the same shards whose changes pass the pause. Returns (steps "
           "completed, [abandoned steps]).")
      .def(
          "delete",
          [](Client& client, const std::string& name, bool recursive) {
            return WithoutGil([&] { return client.Delete(name, recursive); });
          },
          py::arg("name"), py::arg("recursive"))
      .def(
          "batch_update",
          [](Client& client, const py::list& updates, bool return_values) {
            v1::BatchUpdateRequest request;
            TakeUpdates(updates, request.mutable_updates());
            request.set_return_values(return_values);
            v1::BatchUpdateResponse response = WithoutGil(
                [&] { return client.BatchUpdate(std::move(request)); });
            py::list values;
            for (v1::Tensor& value : *response.mutable_values()) {
              values.append(ToArray(ValueOrThrow(TensorFromProto(&value))));
            }
            return py::make_tuple(
                std::vector<int64_t>(response.versions().begin(),
                                     response.versions().end()),
                values);
          },
          py::arg("updates"), py::arg("return_values"),
          "Applies UpdateSpecs atomically; (versions, values).")
      .def(
          "batch_read",
          [](Client& client, const std::vector<std::string>& names,
             const std::string& scope) {
            v1::BatchReadRequest request;
            request.mutable_names()->Assign(names.begin(), names.end());
            request.set_scope(scope);
            v1::BatchReadResponse response =
                WithoutGil([&] { return client.BatchRead(request); });
            py::list out;
            for (auto& entry : *response.mutable_entries()) {
              out.append(py::make_tuple(
                  entry.name(),
                  ToArray(ValueOrThrow(TensorFromProto(entry.mutable_value()))),
                  entry.version()));
            }
            return out;
          },
          py::arg("names"), py::arg("scope"),
          "[(name, value, version)] as of one moment.")
      .def(
          "gather",
          [](Client& client, const std::string& name,
             const py::array& indices) {
            const Tensor tensor = ToTensor(indices);
            ReadResult result =
                WithoutGil([&] { return client.Gather(name, tensor); });
            return py::make_tuple(ToArray(std::move(result.value)),
                                  result.version);
          },
          py::arg("name"), py::arg("indices"), "(rows, version).")
      .def(
          "sync_apply",
          [](Client& client, const std::string& accumulator, int64_t step,
             int32_t replicas_to_aggregate, const std::string& global_step,
             const py::list& updates) {
            v1::SyncApplyRequest request;
            request.set_accumulator(accumulator);
            request.set_step(step);
            request.set_replicas_to_aggregate(replicas_to_aggregate);
            request.set_global_step(global_step);
            TakeUpdates(updates, request.mutable_updates());
            const v1::SyncApplyResponse response = WithoutGil(
                [&] { return client.SyncApply(std::move(request)); });
            py::dict out;
            out["outcome"] = absl::AsciiStrToLower(
                v1::SyncApplyResponse::Outcome_Name(response.outcome()));
            out["global_step"] = response.global_step();
            out["accumulated"] = response.accumulated();
            out["stale_dropped"] = response.stale_dropped();
            return out;
          },
          py::arg("accumulator"), py::arg("step"),
          py::arg("replicas_to_aggregate"), py::arg("global_step"),
          py::arg("updates"))
      .def(
          "wait_for_step",
          [](Client& client, const std::string& global_step, int64_t step,
             double timeout) {
            return WithoutGil([&] {
              return client.WaitForStep(global_step, step,
                                        absl::Seconds(timeout));
            });
          },
          py::arg("global_step"), py::arg("step"), py::arg("timeout"))
      .def(
          "get_embedding_variable",
          [](Client& client, const std::string& name, int mode,
             int64_t embedding_dim, int key_dtype, int value_dtype,
             std::optional<v1::Initializer> initializer, int64_t filter_freq,
             int64_t steps_to_live, bool trainable) {
            v1::GetEmbeddingVariableRequest request;
            request.set_name(name);
            request.set_mode(static_cast<v1::ReuseMode>(mode));
            request.set_embedding_dim(embedding_dim);
            request.set_key_dtype(ToDType(key_dtype));
            request.set_value_dtype(ToDType(value_dtype));
            if (initializer) *request.mutable_initializer() = *initializer;
            request.set_filter_freq(filter_freq);
            request.set_steps_to_live(steps_to_live);
            request.set_trainable(trainable);
            const v1::GetVariableResponse response = WithoutGil(
                [&] { return client.GetEmbeddingVariable(request); });
            const v1::EmbeddingOptions& options =
                response.variable().embedding();
            py::dict out;
            out["created"] = response.created();
            out["embedding_dim"] = options.embedding_dim();
            out["key_dtype"] = static_cast<int>(options.key_dtype());
            out["filter_freq"] = options.filter_freq();
            out["steps_to_live"] = options.steps_to_live();
            out["trainable"] = response.variable().trainable();
            return out;
          },
          py::arg("name"), py::kw_only(), py::arg("mode"),
          py::arg("embedding_dim"), py::arg("key_dtype"),
          py::arg("value_dtype"), py::arg("initializer"),
          py::arg("filter_freq"), py::arg("steps_to_live"),
          py::arg("trainable"),
          "Gets or creates an embedding variable; a dict of its options.")
      .def(
          "embedding_lookup",
          [](Client& client, const std::string& name, const py::array& keys,
             std::optional<int64_t> global_step, bool read_only) {
            const Tensor tensor = ToTensor(keys);
            return ToArray(WithoutGil([&] {
              return client.EmbeddingLookup(name, tensor, global_step,
                                            read_only);
            }));
          },
          py::arg("name"), py::arg("keys"), py::kw_only(),
          py::arg("global_step"), py::arg("read_only"),
          "The rows of `keys` (a 1-D integer array): [len(keys), dim].")
      .def(
          "embedding_apply",
          [](Client& client, const std::string& name, const py::array& keys,
             const py::array& gradients, const v1::Optimizer& optimizer,
             std::optional<int64_t> global_step) {
            const Tensor k = ToTensor(keys);
            const Tensor g = ToTensor(gradients);
            const v1::EmbeddingApplyResponse response = WithoutGil([&] {
              return client.EmbeddingApply(name, k, g, optimizer, global_step);
            });
            py::dict out;
            out["applied"] = response.applied();
            out["filtered"] = response.filtered();
            out["duplicate"] = response.duplicate();
            return out;
          },
          py::arg("name"), py::arg("keys"), py::arg("gradients"), py::kw_only(),
          py::arg("optimizer"), py::arg("global_step"),
          "A sparse optimizer step; {applied, filtered, duplicate}.")
      .def(
          "embedding_stat",
          [](Client& client, const std::string& name, int hottest) {
            const v1::EmbeddingStats stats =
                WithoutGil([&] { return client.EmbeddingStat(name, hottest); });
            py::dict out;
            out["size"] = stats.size();
            out["memory_keys"] = stats.memory_keys();
            out["disk_keys"] = stats.disk_keys();
            out["memory_bytes"] = stats.memory_bytes();
            out["disk_bytes"] = stats.disk_bytes();
            out["candidates"] = stats.candidates();
            out["admitted"] = stats.admitted();
            out["filtered"] = stats.filtered();
            out["evicted"] = stats.evicted();
            out["global_step"] = stats.global_step();
            py::list hottest_keys;
            for (const auto& hot : stats.hottest()) {
              hottest_keys.append(py::make_tuple(hot.key(), hot.frequency()));
            }
            out["hottest"] = hottest_keys;
            return out;
          },
          py::arg("name"), py::arg("hottest") = 0,
          "Counts and sizes of an embedding variable, as a dict.")
      .def(
          "embedding_export",
          [](Client& client, const std::string& name) {
            v1::EmbeddingExportResponse rows =
                WithoutGil([&] { return client.EmbeddingExport(name); });
            return py::make_tuple(
                ToArray(ValueOrThrow(TensorFromProto(rows.mutable_keys()))),
                ToArray(ValueOrThrow(TensorFromProto(rows.mutable_values()))),
                ToArray(
                    ValueOrThrow(TensorFromProto(rows.mutable_frequencies()))),
                ToArray(
                    ValueOrThrow(TensorFromProto(rows.mutable_last_steps()))));
          },
          py::arg("name"), "(keys, values, frequencies, last_steps).")
      .def(
          "embedding_import",
          [](Client& client, const std::string& name, const py::array& keys,
             const py::array& values, std::optional<py::array> frequencies,
             std::optional<py::array> last_steps) {
            const Tensor k = ToTensor(keys);
            const Tensor v = ToTensor(values);
            std::optional<Tensor> f, s;
            if (frequencies) f = ToTensor(*frequencies);
            if (last_steps) s = ToTensor(*last_steps);
            return WithoutGil([&] {
              return client.EmbeddingImport(name, k, v, f ? &*f : nullptr,
                                            s ? &*s : nullptr);
            });
          },
          py::arg("name"), py::arg("keys"), py::arg("values"),
          py::arg("frequencies"), py::arg("last_steps"),
          "Stores rows as given; returns how many.");

  py::class_<v1::Optimizer>(m, "OptimizerSpec",
                            "A server-side optimizer (v1.Optimizer).")
      .def(py::init(&MakeOptimizer), py::arg("kind"), py::arg("learning_rate"))
      .def("__repr__", [](const v1::Optimizer& spec) {
        return absl::StrCat("OptimizerSpec(", spec.ShortDebugString(), ")");
      });
  py::class_<v1::LearningRateSchedule>(
      m, "ScheduleSpec", "A learning-rate schedule (v1.LearningRateSchedule).")
      .def(py::init(&MakeSchedule), py::arg("kind"), py::arg("global_step"))
      .def(
          "learning_rate_at",
          [](const v1::LearningRateSchedule& spec, double learning_rate,
             double step) {
            return DecayedLearningRate(spec, learning_rate, step);
          },
          py::arg("learning_rate"), py::arg("step"))
      .def("with_global_step", [](const v1::LearningRateSchedule& spec,
                                  const py::object& global_step) {
        v1::LearningRateSchedule out = spec;
        *out.mutable_global_step() = MakeScalarInput(global_step);
        return out;
      });
  py::class_<v1::Constraint>(m, "ConstraintSpec",
                             "A built-in constraint (v1.Constraint).")
      .def(py::init(&MakeConstraint), py::arg("kind"), py::kw_only(),
           py::arg("min_value") = 0.0, py::arg("max_value") = 0.0,
           py::arg("rate") = 0.0, py::arg("axis") = std::vector<int32_t>());
  py::class_<v1::Update>(m, "UpdateSpec", "One update of a batch.")
      .def(py::init(&MakeUpdate), py::arg("name"), py::arg("kind"),
           py::arg("value"), py::arg("dtype"), py::kw_only(),
           py::arg("indices") = py::none(), py::arg("optimizer") = py::none(),
           py::arg("expected_version") = py::none());

  py::enum_<Reuse>(m, "Reuse")
      .value("FALSE", Reuse::kFalse)
      .value("TRUE", Reuse::kTrue)
      .value("AUTO_REUSE", Reuse::kAutoReuse);

  py::class_<VariableScope, std::shared_ptr<VariableScope>>(m, "VariableScope")
      .def(py::init<>(), "The root scope, reuse FALSE.")
      .def_readonly("name", &VariableScope::name)
      .def_readwrite("reuse", &VariableScope::reuse)
      .def_property(
          "dtype",
          [](const VariableScope& scope) {
            return static_cast<int>(scope.dtype);
          },
          [](VariableScope& scope, int dtype) { scope.dtype = ToDType(dtype); })
      .def("reuse_variables", &VariableScope::ReuseVariables);

  py::class_<ScopeStack>(m, "ScopeStack")
      .def(py::init<>())
      .def("current", &ScopeStack::current)
      .def(
          "enter",
          [](ScopeStack& stack, std::optional<std::string> name,
             std::shared_ptr<VariableScope> scope,
             std::optional<std::string> default_name,
             std::optional<Reuse> reuse, std::optional<int> dtype) {
            ScopeArgs args;
            args.name = std::move(name);
            args.scope = std::move(scope);
            args.default_name = std::move(default_name);
            args.reuse = reuse;
            if (dtype.has_value()) args.dtype = ToDType(*dtype);
            return ValueOrThrow(stack.Enter(args));
          },
          py::kw_only(), py::arg("name") = py::none(),
          py::arg("scope") = py::none(), py::arg("default_name") = py::none(),
          py::arg("reuse") = py::none(), py::arg("dtype") = py::none())
      .def("exit", [](ScopeStack& stack) { ThrowIfError(stack.Exit()); });

  py::class_<Variable>(m, "Variable")
      .def_property_readonly("name", &Variable::name)
      .def_property_readonly(
          "dtype",
          [](const Variable& v) { return static_cast<int>(v.dtype()); })
      .def_property_readonly("shape", &Variable::shape)
      .def_property_readonly("trainable", &Variable::trainable)
      .def_property_readonly(
          "collections",
          [](const Variable& v) -> std::optional<std::vector<std::string>> {
            if (!v.info().has_collections()) return std::nullopt;
            const auto& names = v.info().collections().names();
            return std::vector<std::string>(names.begin(), names.end());
          },
          "The collections it was created in; None: the default.")
      .def_property_readonly("created", &Variable::created)
      .def_property_readonly("version", &Variable::version)
      .def_property_readonly("partitioned", &Variable::partitioned)
      .def_property_readonly("parts", &Variable::parts)
      .def_property_readonly("partitions", &Variable::partitions)
      .def_property_readonly("client", &Variable::client)
      .def_property_readonly(
          "slice", [](const Variable& v) { return SliceOf(v.info()); })
      .def_property_readonly("constraint",
                             [](const Variable& v) {
                               return ConstraintOf(v.partitioned()
                                                       ? v.parts()[0].info()
                                                       : v.info());
                             })
      .def("see_version", &Variable::SeeVersion, py::arg("version"))
      .def("read",
           [](const Variable& v) {
             return ToArray(WithoutGil([&] { return v.Read(); }));
           })
      .def(
          "assign",
          [](const Variable& v, const py::array& value, bool return_value,
             std::optional<int64_t> expected_version) {
            return Update(v, value, return_value, expected_version,
                          &Variable::Assign);
          },
          py::arg("value"), py::arg("return_value"),
          py::arg("expected_version"))
      .def(
          "assign_add",
          [](const Variable& v, const py::array& delta, bool return_value,
             std::optional<int64_t> expected_version) {
            return Update(v, delta, return_value, expected_version,
                          &Variable::AssignAdd);
          },
          py::arg("delta"), py::arg("return_value"),
          py::arg("expected_version"));

  m.def(
      "get_variable",
      [](std::shared_ptr<Client> client, const VariableScope& scope,
         const std::string& name, std::optional<std::vector<int64_t>> shape,
         int dtype, std::optional<v1::Initializer> initializer,
         std::optional<bool> trainable,
         std::optional<v1::Partitioner> partitioner,
         std::optional<v1::Constraint> constraint,
         std::optional<std::vector<std::string>> collections) {
        GetVariableOptions options;
        options.shape = std::move(shape);
        options.dtype = ToDType(dtype);
        options.initializer = std::move(initializer);
        options.trainable = trainable;
        options.partitioner = std::move(partitioner);
        options.constraint = std::move(constraint);
        options.collections = std::move(collections);
        return WithoutGil([&] {
          return GetVariable(std::move(client), scope, name, options);
        });
      },
      py::arg("client"), py::arg("scope"), py::arg("name"), py::kw_only(),
      py::arg("shape"), py::arg("dtype"), py::arg("initializer"),
      py::arg("trainable"), py::arg("partitioner"),
      py::arg("constraint") = py::none(), py::arg("collections") = py::none());
  m.def(
      "get_global_step",
      [](std::shared_ptr<Client> client, Reuse reuse) {
        return WithoutGil(
            [&] { return GetGlobalStep(std::move(client), reuse); });
      },
      py::arg("client"), py::arg("reuse"));

  py::class_<BundleWriter>(m, "BundleWriter",
                           "Writes a TensorFlow checkpoint (tensor_bundle.h).")
      .def(py::init([](const std::string& prefix) {
             return ValueOrThrow(BundleWriter::Create(prefix));
           }),
           py::arg("prefix"))
      .def(
          "add",
          [](BundleWriter& writer, const std::string& name,
             const py::array& value, int dtype) {
            const Tensor tensor = ToTensor(value, ToDType(dtype));
            py::gil_scoped_release release;
            ThrowIfError(writer.Add(name, tensor));
          },
          py::arg("name"), py::arg("value"), py::arg("dtype"))
      .def(
          "add_slice",
          [](BundleWriter& writer, const std::string& name,
             const std::vector<int64_t>& full_shape, BundleSlice slice,
             const py::array& value, int dtype) {
            const Tensor tensor = ToTensor(value, ToDType(dtype));
            py::gil_scoped_release release;
            ThrowIfError(writer.AddSlice(name, full_shape, slice, tensor));
          },
          py::arg("name"), py::arg("full_shape"), py::arg("slice"),
          py::arg("value"), py::arg("dtype"))
      .def("finish", [](BundleWriter& writer) {
        py::gil_scoped_release release;
        ThrowIfError(writer.Finish());
      });
  py::class_<BundleSlice>(m, "BundleSlice")
      .def(
          py::init([](std::vector<int64_t> start, std::vector<int64_t> length) {
            return BundleSlice{std::move(start), std::move(length)};
          }),
          py::arg("start"), py::arg("length"))
      .def_readonly("start", &BundleSlice::start)
      .def_readonly("length", &BundleSlice::length)
      .def("key", [](const BundleSlice& slice, const std::string& name) {
        return py::bytes(BundleSliceKey(name, slice));
      });
  py::class_<BundleReader>(m, "BundleReader",
                           "Reads a TensorFlow checkpoint (tensor_bundle.h).")
      .def(py::init([](const std::string& prefix) {
             return ValueOrThrow(BundleReader::Open(prefix));
           }),
           py::arg("prefix"))
      .def(
          "tensors",
          [](const BundleReader& reader) {
            py::list out;
            for (const auto& [name, entry] : reader.tensors()) {
              std::vector<int64_t> dims;
              for (const auto& dim : entry.shape().dim()) {
                dims.push_back(dim.size());
              }
              py::list slices;
              for (const auto& slice : entry.slices()) {
                BundleSlice out_slice;
                for (const auto& extent : slice.extent()) {
                  out_slice.start.push_back(extent.start());
                  out_slice.length.push_back(
                      extent.has_length() ? extent.length() : -1);
                }
                slices.append(py::cast(std::move(out_slice)));
              }
              out.append(py::make_tuple(name, entry.dtype(), dims, slices));
            }
            return out;
          },
          "[(name, dtype enum, shape, [BundleSlice])] in name order.")
      .def(
          "read",
          [](const BundleReader& reader, const std::string& key) {
            return ToArray(WithoutGil([&] { return reader.Read(key); }));
          },
          py::arg("key"));
}
