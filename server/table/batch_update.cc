#include "server/table/batch_update.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "common/shape.h"
#include "common/status.h"
#include "server/table/tensor_ops.h"

namespace varscope::server {
namespace {

// The value of scalar variable `name`, an optimizer's input.
absl::StatusOr<double> ScalarValue(absl::string_view name, DType dtype,
                                   absl::Span<const int64_t> dims,
                                   const char* data) {
  if (!dims.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("The optimizer's input ", name,
                     " must be a scalar, not of shape ", ShapeString(dims)));
  }
  return VisitDType(dtype, [&](auto zero) {
    using T = decltype(zero);
    T v;
    memcpy(&v, data, sizeof(T));
    return ToDouble(v);
  });
}

absl::Status CannotAdd(absl::string_view verb, absl::string_view name,
                       DType dtype) {
  return absl::InvalidArgumentError(absl::StrCat(
      "Cannot ", verb, " variable ", name, " of dtype ", DTypeName(dtype)));
}

absl::StatusOr<BatchOp> DecodeUpdate(v1::Update& update) {
  VS_RETURN_IF_ERROR(ValidateName(update.name()));
  BatchOp op;
  op.name = update.name();
  if (update.has_expected_version()) {
    op.expected_version = update.expected_version();
  }
  op.kind = update.op_case();
  switch (update.op_case()) {
    case v1::Update::kAssign: {
      VS_ASSIGN_OR_RETURN(op.tensor, TensorFromProto(update.mutable_assign()));
      break;
    }
    case v1::Update::kAssignAdd: {
      VS_ASSIGN_OR_RETURN(op.tensor,
                          TensorFromProto(update.mutable_assign_add()));
      break;
    }
    case v1::Update::kAssignMul: {
      VS_ASSIGN_OR_RETURN(op.tensor,
                          TensorFromProto(update.mutable_assign_mul()));
      break;
    }
    case v1::Update::kScatter: {
      VS_ASSIGN_OR_RETURN(
          op.tensor, TensorFromProto(update.mutable_scatter()->mutable_rows()));
      VS_ASSIGN_OR_RETURN(
          op.indices,
          TensorFromProto(update.mutable_scatter()->mutable_indices()));
      op.mode = update.scatter().mode();
      break;
    }
    case v1::Update::kApplyGradient: {
      v1::ApplyGradient* apply = update.mutable_apply_gradient();
      VS_ASSIGN_OR_RETURN(op.tensor,
                          TensorFromProto(apply->mutable_gradient()));
      if (apply->has_indices()) {
        VS_ASSIGN_OR_RETURN(op.indices,
                            TensorFromProto(apply->mutable_indices()));
      }
      VS_ASSIGN_OR_RETURN(op.optimizer,
                          OptimizerStep::Resolve(apply->optimizer()));
      break;
    }
    case v1::Update::OP_NOT_SET:
      return absl::InvalidArgumentError(
          absl::StrCat("The update of ", update.name(), " has no operation"));
  }
  return op;
}

// assign, assign_add, assign_mul of the whole variable.
absl::Status ApplyWhole(BatchOp& op, WorkingVariable& w) {
  const TableVariable& var = *w.var;
  if (op.kind == v1::Update::kAssign) {
    VS_RETURN_IF_ERROR(ShapeMismatch("assign a tensor", op.name, op.tensor,
                                     var.dims, var.dtype));
    w.copy.SetWhole(op.tensor.ReleaseBytes());
    return absl::OkStatus();
  }
  const bool add = op.kind == v1::Update::kAssignAdd;
  VS_RETURN_IF_ERROR(
      ShapeMismatch(add ? "add a tensor" : "multiply by a tensor", op.name,
                    op.tensor, var.dims, var.dtype));
  if (!SupportsAdd(var.dtype)) {
    return CannotAdd(add ? "add to" : "multiply", op.name, var.dtype);
  }
  (add ? AddInPlace : MulInPlace)(var.dtype, op.tensor.bytes().data(),
                                  w.copy.MutableWhole(),
                                  op.tensor.num_elements());
  return absl::OkStatus();
}

absl::Status ApplyScatter(const BatchOp& op, WorkingVariable& w) {
  const TableVariable& var = *w.var;
  if (var.dims.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Cannot scatter rows into scalar variable ", op.name));
  }
  VS_ASSIGN_OR_RETURN(std::vector<int64_t> rows,
                      RowIndices(*op.indices, op.name, var.dims[0]));
  VS_RETURN_IF_ERROR(CheckRows("scatter a tensor", op.name, op.tensor,
                               rows.size(), var.dims, var.dtype));
  const bool add = op.mode == v1::Scatter::ADD;
  if (add && !SupportsAdd(var.dtype)) {
    return CannotAdd("add to", op.name, var.dtype);
  }
  const int64_t row_elems =
      w.copy.row_bytes() / static_cast<int64_t>(DTypeSize(var.dtype));
  const char* src = op.tensor.bytes().data();
  w.copy.CopyRows(rows);
  for (size_t i = 0; i < rows.size(); ++i) {
    const char* row = src + i * w.copy.row_bytes();
    if (add) {
      AddInPlace(var.dtype, row, w.copy.MutableRow(rows[i]), row_elems);
    } else {
      memcpy(w.copy.MutableRow(rows[i]), row,
             static_cast<size_t>(w.copy.row_bytes()));
    }
  }
  return absl::OkStatus();
}

// A sparse gradient: IndexedSlices semantics (see ApplyIndexedSlices).
absl::Status ApplySparseGradient(const BatchOp& op, WorkingVariable& w,
                                 const std::vector<WorkingVariable*>& slots) {
  const TableVariable& var = *w.var;
  if (w.meta.info().has_constraint()) {
    // As TensorFlow's optimizers: a constraint needs the whole variable, a
    // sparse step touches some rows.
    return absl::InvalidArgumentError(absl::StrCat(
        "Cannot use a constraint function on a sparse variable: ", op.name,
        " has a constraint and got a sparse gradient"));
  }
  if (var.dims.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Cannot apply a sparse gradient to scalar variable ", op.name));
  }
  VS_ASSIGN_OR_RETURN(std::vector<int64_t> rows,
                      RowIndices(*op.indices, op.name, var.dims[0]));
  VS_RETURN_IF_ERROR(CheckRows("apply a gradient", op.name, op.tensor,
                               rows.size(), var.dims, var.dtype));
  w.copy.CopyRows(rows);
  for (WorkingVariable* slot : slots) slot->copy.CopyRows(rows);
  op.optimizer->ApplyIndexedSlices(
      var.dtype,
      w.copy.row_bytes() / static_cast<int64_t>(DTypeSize(var.dtype)), rows,
      op.tensor.bytes().data(),
      [&](int64_t row) { return w.copy.MutableRow(row); },
      [&](size_t slot, int64_t row) {
        return slots[slot]->copy.MutableRow(row);
      });
  return absl::OkStatus();
}

absl::Status ApplyGradient(BatchOp& op, WorkingSet& working,
                           std::map<std::string, double>& advances) {
  WorkingVariable& w = working.at(op.name);
  const TableVariable& var = *w.var;
  OptimizerStep& optimizer = *op.optimizer;
  std::vector<WorkingVariable*> slots;
  for (const SlotSpec& slot : optimizer.slots()) {
    WorkingVariable& s = working.at(JoinName(op.name, slot.suffix));
    s.touched = true;
    slots.push_back(&s);
  }
  VS_RETURN_IF_ERROR(optimizer.ReadInputs(
      [&](const std::string& name) -> absl::StatusOr<double> {
        WorkingVariable& input = working.at(name);
        return ScalarValue(name, input.var->dtype, input.var->dims,
                           input.copy.Whole());
      }));
  for (auto& [name, factor] : optimizer.Advances()) advances[name] = factor;
  if (op.indices.has_value()) return ApplySparseGradient(op, w, slots);
  VS_RETURN_IF_ERROR(ShapeMismatch("apply a gradient", op.name, op.tensor,
                                   var.dims, var.dtype));
  std::vector<char*> slot_data;
  for (WorkingVariable* slot : slots) {
    slot_data.push_back(slot->copy.MutableWhole());
  }
  optimizer.ApplyElements(var.dtype, op.tensor.num_elements(),
                          w.copy.MutableWhole(), slot_data,
                          op.tensor.bytes().data());
  const v1::VariableInfo& info = w.meta.info();
  if (info.has_constraint()) {
    ApplyConstraint(info.constraint(), var.dtype, var.dims,
                    w.copy.MutableWhole());
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<BatchOp>> DecodeUpdates(
    v1::BatchUpdateRequest& request) {
  if (request.updates().empty()) {
    return absl::InvalidArgumentError("A batch needs at least one update");
  }
  std::vector<BatchOp> ops;
  for (v1::Update& update : *request.mutable_updates()) {
    VS_ASSIGN_OR_RETURN(ops.emplace_back(), DecodeUpdate(update));
  }
  return ops;
}

absl::Status CheckVersions(const std::vector<BatchOp>& ops,
                           const WorkingSet& working) {
  for (const BatchOp& op : ops) {
    const int64_t version = working.at(op.name).meta.info().version();
    if (op.expected_version.has_value() && *op.expected_version != version) {
      return absl::AbortedError(
          absl::StrCat("Variable ", op.name, " is at version ", version,
                       ", not the expected version ", *op.expected_version));
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyUpdates(std::vector<BatchOp>& ops, WorkingSet& working) {
  // Scalars multiplied once after all updates (Adam's beta powers).
  std::map<std::string, double> advances;
  for (BatchOp& op : ops) {
    WorkingVariable& w = working.at(op.name);
    w.touched = true;
    switch (op.kind) {
      case v1::Update::kAssign:
      case v1::Update::kAssignAdd:
      case v1::Update::kAssignMul:
        VS_RETURN_IF_ERROR(ApplyWhole(op, w));
        break;
      case v1::Update::kScatter:
        VS_RETURN_IF_ERROR(ApplyScatter(op, w));
        break;
      case v1::Update::kApplyGradient:
        VS_RETURN_IF_ERROR(ApplyGradient(op, working, advances));
        break;
      case v1::Update::OP_NOT_SET:
        break;
    }
  }
  for (const auto& [name, factor] : advances) {
    WorkingVariable& w = working.at(name);
    w.touched = true;
    VisitDType(w.var->dtype, [&](auto zero) {
      using T = decltype(zero);
      const T by = FromDouble<T>(factor);
      MulInPlace(w.var->dtype, reinterpret_cast<const char*>(&by),
                 w.copy.MutableWhole(), 1);
    });
  }
  return absl::OkStatus();
}

}  // namespace varscope::server
