#include "server/table/get_variable_plan.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/initializers.h"
#include "common/names.h"
#include "common/partitioners.h"
#include "common/shape.h"
#include "common/status.h"
#include "server/table/optimizers.h"

namespace varscope::server {
namespace {

// Python's str() of a list of ints: "[4, 1]".
std::string ListString(absl::Span<const int64_t> values) {
  return absl::StrCat("[", absl::StrJoin(values, ", "), "]");
}

// A request's collection names: a variable's metadata is kept in memory and
// sent with every listing, so its size is bounded.
absl::Status ValidateCollections(absl::string_view name,
                                 const v1::Collections& collections) {
  constexpr int kMaxCollections = 64;
  constexpr size_t kMaxCollectionNameBytes = 256;
  if (collections.names_size() > kMaxCollections) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Variable ", name, " is given ", collections.names_size(),
        " collections; at most ", kMaxCollections, " are allowed"));
  }
  for (const std::string& collection : collections.names()) {
    if (collection.empty() || collection.size() > kMaxCollectionNameBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Collection names of variable ", name, " must have 1 to ",
          kMaxCollectionNameBytes, " bytes, got one of ", collection.size()));
    }
  }
  return absl::OkStatus();
}

Shape RequestShape(const v1::GetVariableRequest& request) {
  if (!request.has_shape()) return Shape::Unknown();
  return Shape(std::vector<int64_t>(request.shape().dims().begin(),
                                    request.shape().dims().end()));
}

// The checks of reusing an existing variable (`what`: "share variable" or
// "reuse partitioned variable"): the request's shape and dtype must match.
absl::Status CheckReuse(absl::string_view what, absl::string_view name,
                        const Shape& shape, absl::Span<const int64_t> found,
                        DType dtype, DType found_dtype) {
  if (!shape.IsCompatibleWith(
          Shape(std::vector<int64_t>(found.begin(), found.end())))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Trying to ", what, " ", name, ", but specified shape ",
        shape.ToString(), " and found shape ", ShapeString(found), "."));
  }
  if (dtype != found_dtype) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Trying to ", what, " ", name, ", but specified dtype ",
        DTypeName(dtype), " and found dtype ", DTypeName(found_dtype), "."));
  }
  return absl::OkStatus();
}

// The NOT_FOUND of a REUSE of a missing variable (`kind`: "Variable" or
// "PartitionedVariable"; `reuse`: the settings that would create it).
absl::Status ReuseOfMissing(absl::string_view kind, absl::string_view name,
                            absl::string_view reuse) {
  return absl::NotFoundError(absl::StrCat(
      kind, " ", name,
      " does not exist, or was not created with tf.get_variable(). Did you "
      "mean to set ",
      reuse, " in VarScope?"));
}

// The creation settings of `request` for a variable of `full_dims`, and its
// initializer (INVALID_ARGUMENT if that does not fit).
absl::Status PlanCreation(const v1::GetVariableRequest& request,
                          absl::Span<const int64_t> full_dims,
                          CreationPlan* plan) {
  const DType dtype = request.dtype();
  plan->init = ResolveDefaultInitializer(request.initializer(), dtype);
  VS_RETURN_IF_ERROR(ValidateInitializer(plan->init, dtype, full_dims));
  plan->full_dims.assign(full_dims.begin(), full_dims.end());
  plan->dtype = dtype;
  plan->trainable = !request.has_trainable() || request.trainable();
  plan->constraint = request.constraint();
  if (request.has_collections()) plan->collections = request.collections();
  if (request.has_embedding()) plan->embedding = request.embedding();
  return absl::OkStatus();
}

// A variable to create: `name` of `dims` at `offset` of the whole.
CreationPlan::Part NewPart(absl::string_view name,
                           absl::Span<const int64_t> dims,
                           std::vector<int64_t> offset) {
  CreationPlan::Part part;
  v1::VariableInfo* info = part.meta.mutable_info();
  info->set_name(std::string(name));
  info->mutable_shape()->mutable_dims()->Assign(dims.begin(), dims.end());
  part.offset = std::move(offset);
  return part;
}

// INVALID_ARGUMENT if `request` asks for an embedding variable and `info` is
// a dense one, or the other way round, or for another embedding_dim.
absl::Status CheckKind(const v1::GetVariableRequest& request,
                       const v1::VariableInfo& info) {
  const std::string& name = request.name();
  if (request.has_embedding() && !info.has_embedding()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Variable ", name,
        " is a dense variable; an embedding variable cannot share its name."));
  }
  if (!request.has_embedding() && info.has_embedding()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Variable ", name,
        " is an embedding variable; a dense variable cannot share its name."));
  }
  if (request.has_embedding() &&
      request.embedding().embedding_dim() != info.embedding().embedding_dim()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Trying to share embedding variable ", name,
        ", but specified embedding_dim ", request.embedding().embedding_dim(),
        " and found embedding_dim ", info.embedding().embedding_dim(), "."));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::GetVariableResponse> PlanSingle(
    const v1::GetVariableRequest& request, const VariableMap& vars,
    int64_t max_bytes, CreationPlan* plan) {
  const std::string& name = request.name();
  if (Lookup(vars, PartName(name, 0)) != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "No partitioner was provided, but a partitioned version of the "
        "variable was found: ",
        name,
        "/part_0. Perhaps a variable of the same name was already created "
        "with partitioning?"));
  }
  const Shape shape = RequestShape(request);
  if (std::shared_ptr<TableVariable> var = Lookup(vars, name)) {
    if (request.mode() == v1::CREATE) {
      return absl::AlreadyExistsError(absl::StrCat(
          "Variable ", name,
          " already exists, disallowed. Did you mean to set reuse=True or "
          "reuse=tf.AUTO_REUSE in VarScope?"));
    }
    VS_RETURN_IF_ERROR(CheckKind(request, var->Info()));
    VS_RETURN_IF_ERROR(CheckReuse("share variable", name, shape, var->dims,
                                  request.dtype(), var->dtype));
    v1::GetVariableResponse response;
    *response.mutable_variable() = var->Info();
    return response;
  }
  if (request.mode() == v1::REUSE) {
    return ReuseOfMissing("Variable", name, "reuse=tf.AUTO_REUSE");
  }
  if (!shape.IsFullyDefined()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Shape of a new variable (", name,
        ") must be fully defined, but instead was ", shape.ToString(), "."));
  }
  VS_RETURN_IF_ERROR(
      CheckNewVariable(name, request.dtype(), shape.dims(), max_bytes));
  VS_RETURN_IF_ERROR(PlanCreation(request, shape.dims(), plan));
  plan->parts.push_back(NewPart(name, shape.dims(),
                                std::vector<int64_t>(shape.dims().size(), 0)));
  return v1::GetVariableResponse();
}

// How the partitioner of `request` splits the variable.
struct Layout {
  std::vector<int64_t> partitions;
  std::vector<PartSlice> slices;
};

absl::StatusOr<Layout> PartitionLayout(const v1::GetVariableRequest& request,
                                       const Shape& shape) {
  if (!shape.IsFullyDefined()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Shape of a new partitioned variable must be fully defined, but "
        "instead was ",
        shape.ToString(), "."));
  }
  if (shape.rank() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "A partitioned Variable must have rank at least 1, shape: ",
        shape.ToString()));
  }
  Layout layout;
  VS_ASSIGN_OR_RETURN(
      layout.partitions,
      ComputePartitions(request.partitioner(), shape.dims(), request.dtype()));
  VS_ASSIGN_OR_RETURN(
      layout.slices,
      SlicePartitions(request.name(), shape.dims(), layout.partitions));
  return layout;
}

// The answer for the existing `parts` of a partitioned variable.
absl::StatusOr<v1::GetVariableResponse> ReusePartitioned(
    const v1::GetVariableRequest& request, const Shape& shape,
    const std::optional<Layout>& layout,
    const std::vector<std::shared_ptr<TableVariable>>& parts) {
  const std::string& name = request.name();
  if (request.mode() == v1::CREATE) {
    return absl::AlreadyExistsError(
        absl::StrCat("Partitioned variable with name ", name,
                     " already exists. Did you mean to set reuse=True or "
                     "reuse=tf.AUTO_REUSE in VarScope?"));
  }
  const v1::VariableInfo info0 = parts.front()->Info();
  const std::vector<int64_t> found_dims(
      info0.slice().full_shape().dims().begin(),
      info0.slice().full_shape().dims().end());
  const std::vector<int64_t> found_partitions(
      info0.slice().partitions().begin(), info0.slice().partitions().end());
  VS_RETURN_IF_ERROR(CheckReuse("reuse partitioned variable", name, shape,
                                found_dims, request.dtype(),
                                parts.front()->dtype));
  if (layout.has_value() && layout->partitions != found_partitions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Trying to reuse partitioned variable ", name,
        ", but specified partitions ", ListString(layout->partitions),
        " and found partitions ", ListString(found_partitions), "."));
  }
  v1::GetVariableResponse response;
  for (const std::shared_ptr<TableVariable>& part : parts) {
    *response.add_parts() = part->Info();
  }
  v1::VariableInfo* whole = response.mutable_variable();
  whole->set_name(name);
  whole->set_dtype(request.dtype());
  *whole->mutable_shape() = info0.slice().full_shape();
  whole->set_trainable(info0.trainable());
  if (info0.has_collections()) {
    *whole->mutable_collections() = info0.collections();
  }
  *whole->mutable_initializer() = info0.initializer();
  whole->set_create_time_micros(info0.create_time_micros());
  return response;
}

// ALREADY_EXISTS or INVALID_ARGUMENT if variables named as the `n` parts
// exist that are not parts of the partitioned variable `name`.
absl::Status CheckPartNamesFree(const VariableMap& vars,
                                const std::string& name, int64_t n,
                                const v1::PartPlacement* placement) {
  if (placement != nullptr) {
    // Only some parts are here: name the first that is taken.
    for (int64_t i = 0; i < n; ++i) {
      if (!PlacedHere(name, i, placement) ||
          Lookup(vars, PartName(name, i)) == nullptr) {
        continue;
      }
      return absl::AlreadyExistsError(
          absl::StrCat("Variable ", PartName(name, i),
                       " exists but was not created as part ", i,
                       " of partitioned variable ", name, "."));
    }
    return absl::OkStatus();
  }
  if (Lookup(vars, PartName(name, 0)) == nullptr) return absl::OkStatus();
  const std::string differs = absl::StrCat(
      "Partitioner returned a different partitioning than what was already "
      "found.  Partitioner returned ",
      n, " shards, and shard ", name, "/part_0 was found, but ");
  if (Lookup(vars, PartName(name, n - 1)) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(differs, name, "/part_", n - 1, " was not."));
  }
  if (Lookup(vars, PartName(name, n)) != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        differs, "so was the extra shard ", name, "/part_", n, "."));
  }
  return absl::AlreadyExistsError(absl::StrCat(
      "Variables ", name, "/part_0 to ", name, "/part_", n - 1,
      " exist but were not created as parts of partitioned variable ", name,
      "."));
}

absl::StatusOr<v1::GetVariableResponse> PlanPartitioned(
    const v1::GetVariableRequest& request, const VariableMap& vars,
    const std::vector<std::shared_ptr<TableVariable>>& parts, int64_t max_bytes,
    CreationPlan* plan) {
  const std::string& name = request.name();
  const v1::PartPlacement* placement =
      request.has_placement() ? &request.placement() : nullptr;
  const bool has_partitioner =
      request.partitioner().kind_case() != v1::Partitioner::KIND_NOT_SET;
  if (has_partitioner && Lookup(vars, name) != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "A partitioner was provided, but an unpartitioned version of the "
        "variable was found: ",
        name,
        ".  Perhaps a variable of the same name was already created without "
        "partitioning?"));
  }
  const Shape shape = RequestShape(request);
  std::optional<Layout> layout;
  if (request.mode() != v1::REUSE || has_partitioner) {
    VS_ASSIGN_OR_RETURN(layout, PartitionLayout(request, shape));
  }
  if (!parts.empty()) return ReusePartitioned(request, shape, layout, parts);
  if (request.mode() == v1::REUSE) {
    return ReuseOfMissing("PartitionedVariable", name,
                          "reuse=False or reuse=tf.AUTO_REUSE");
  }
  const int64_t n = static_cast<int64_t>(layout->slices.size());
  VS_RETURN_IF_ERROR(CheckPartNamesFree(vars, name, n, placement));
  VS_RETURN_IF_ERROR(PlanCreation(request, shape.dims(), plan));
  plan->partitioned = true;
  for (int64_t i = 0; i < n; ++i) {
    if (!PlacedHere(name, i, placement)) continue;
    const PartSlice& slice = layout->slices[i];
    const std::string part_name = PartName(name, i);
    VS_RETURN_IF_ERROR(
        CheckNewVariable(part_name, request.dtype(), slice.dims, max_bytes));
    CreationPlan::Part part = NewPart(part_name, slice.dims, slice.offset);
    v1::SliceInfo* info = part.meta.mutable_info()->mutable_slice();
    info->set_full_name(name);
    info->mutable_full_shape()->mutable_dims()->Assign(shape.dims().begin(),
                                                       shape.dims().end());
    info->mutable_var_offset()->Assign(slice.offset.begin(),
                                       slice.offset.end());
    info->mutable_partitions()->Assign(layout->partitions.begin(),
                                       layout->partitions.end());
    info->set_part_index(static_cast<int32_t>(i));
    plan->parts.push_back(std::move(part));
  }
  return v1::GetVariableResponse();
}

}  // namespace

absl::Status ValidateGetVariable(const v1::GetVariableRequest& request) {
  const std::string& name = request.name();
  VS_RETURN_IF_ERROR(ValidateName(name));
  if (request.mode() != v1::CREATE && request.mode() != v1::REUSE &&
      request.mode() != v1::AUTO_REUSE) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Unknown reuse mode ", static_cast<int>(request.mode()),
        " for variable ", name, "; expected CREATE, REUSE or AUTO_REUSE"));
  }
  if (!IsSupportedDType(request.dtype())) {
    return absl::InvalidArgumentError(
        absl::StrCat("Unsupported dtype ", static_cast<int>(request.dtype()),
                     " for variable ", name));
  }
  if (request.has_shape()) {
    VS_RETURN_IF_ERROR(
        ValidateDims(request.shape().dims(), /*allow_unknown=*/true));
    if (request.has_constraint()) {
      VS_RETURN_IF_ERROR(ValidateConstraint(request.constraint(), name,
                                            request.shape().dims_size()));
    }
  }
  if (request.has_placement() && (request.placement().shard_count() < 1 ||
                                  request.placement().shard_index() < 0 ||
                                  request.placement().shard_index() >=
                                      request.placement().shard_count())) {
    return absl::InvalidArgumentError(
        absl::StrCat("The part placement of variable ", name,
                     " must name a shard_index in [0, shard_count), got ",
                     request.placement().shard_index(), " of ",
                     request.placement().shard_count()));
  }
  return ValidateCollections(name, request.collections());
}

absl::Status CheckNewVariable(absl::string_view name, DType dtype,
                              absl::Span<const int64_t> dims,
                              int64_t max_bytes) {
  VS_ASSIGN_OR_RETURN(const int64_t n, NumElements(dims));
  // Both fit in int64: NumElements is at most 2^50.
  const int64_t bytes = n * static_cast<int64_t>(DTypeSize(dtype));
  const absl::StatusOr<int64_t> row =
      dims.empty() ? absl::StatusOr<int64_t>(0) : NumElements(dims.subspan(1));
  std::string over;
  if (bytes > max_bytes) {
    over = absl::StrCat("needs ", bytes, " bytes");
  } else if (!row.ok() ||
             *row * static_cast<int64_t>(DTypeSize(dtype)) > max_bytes) {
    // A row (one index of the first axis) must fit too, even with no rows:
    // its size lays out the chunks and sizes row updates.
    over = absl::StrCat("has rows of shape ", ShapeString(dims.subspan(1)));
  } else {
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "Variable ", name, " of shape ", ShapeString(dims), " and dtype ",
      DTypeName(dtype), " ", over, ", over this server's limit of ", max_bytes,
      " (--max-variable-bytes)"));
}

absl::StatusOr<v1::GetVariableResponse> PlanGetVariable(
    const v1::GetVariableRequest& request, const VariableMap& vars,
    int64_t max_variable_bytes, CreationPlan* plan) {
  VS_ASSIGN_OR_RETURN(
      const std::vector<std::shared_ptr<TableVariable>> parts,
      Parts(vars, request.name(),
            request.has_placement() ? &request.placement() : nullptr));
  const bool has_partitioner =
      request.has_partitioner() &&
      request.partitioner().kind_case() != v1::Partitioner::KIND_NOT_SET;
  const bool is_scalar = request.has_shape() && request.shape().dims().empty();
  const bool reuse_partitioned =
      request.mode() == v1::REUSE && !has_partitioner && !parts.empty();
  return (has_partitioner && !is_scalar) || reuse_partitioned
             ? PlanPartitioned(request, vars, parts, max_variable_bytes, plan)
             : PlanSingle(request, vars, max_variable_bytes, plan);
}

}  // namespace varscope::server
