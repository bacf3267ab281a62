#include "client/variable_scope.h"

#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "common/status.h"

namespace varscope {
namespace {

// TensorFlow's `reuse_arg or inherited`: False and None both inherit.
Reuse Inherit(const std::optional<Reuse>& arg, Reuse inherited) {
  return arg.has_value() && *arg != Reuse::kFalse ? *arg : inherited;
}

v1::ReuseMode ModeOf(Reuse reuse) {
  switch (reuse) {
    case Reuse::kTrue:
      return v1::REUSE;
    case Reuse::kAutoReuse:
      return v1::AUTO_REUSE;
    case Reuse::kFalse:
      break;
  }
  return v1::CREATE;
}

}  // namespace

ScopeStack::ScopeStack() {
  frames_.push_back(Frame{std::make_shared<VariableScope>(), std::nullopt});
}

std::string ScopeStack::UniqueName(absl::string_view prefix) const {
  const std::string base = JoinName(current()->name, prefix);
  auto count = [&](const std::string& n) {
    auto it = counts_.find(n);
    return it == counts_.end() ? 0 : it->second;
  };
  if (count(base) == 0) return std::string(prefix);
  int i = 1;
  while (count(absl::StrCat(base, "_", i)) > 0) ++i;
  return absl::StrCat(prefix, "_", i);
}

absl::StatusOr<std::shared_ptr<VariableScope>> ScopeStack::Enter(
    const ScopeArgs& args) {
  const bool named = args.name.has_value() || args.scope != nullptr;
  if (!named && !args.default_name.has_value()) {
    return absl::InvalidArgumentError(
        "If default_name is None then name_or_scope is required");
  }
  if (!named && args.reuse.has_value() && *args.reuse != Reuse::kFalse) {
    return absl::InvalidArgumentError(
        "reuse=True cannot be used without a name_or_scope");
  }
  const VariableScope& parent = *current();
  auto scope = std::make_shared<VariableScope>();
  Frame frame;
  if (args.scope != nullptr) {
    *scope = *args.scope;
    scope->reuse = Inherit(args.reuse, args.scope->reuse);
    ++counts_[scope->name];
    frame.saved_counts = counts_;
  } else {
    const std::string leaf =
        args.name.has_value() ? *args.name : UniqueName(*args.default_name);
    // As TensorFlow, variable_scope("") at the root is the root scope.
    if (!leaf.empty() || !parent.name.empty()) {
      VS_RETURN_IF_ERROR(ValidateName(leaf));
    }
    *scope = parent;
    scope->name = JoinName(parent.name, leaf);
    scope->reuse = Inherit(args.reuse, parent.reuse);
    ++counts_[scope->name];
  }
  if (args.initializer.has_value()) scope->initializer = args.initializer;
  if (args.dtype.has_value()) scope->dtype = *args.dtype;
  if (args.partitioner.has_value()) scope->partitioner = args.partitioner;
  frame.scope = scope;
  frames_.push_back(std::move(frame));
  return scope;
}

absl::Status ScopeStack::Exit() {
  if (frames_.size() == 1) {
    return absl::FailedPreconditionError("No variable scope to exit");
  }
  Frame& frame = frames_.back();
  if (frame.saved_counts.has_value()) {
    counts_ = std::move(*frame.saved_counts);
  } else {
    const std::string prefix = absl::StrCat(frame.scope->name, "/");
    for (auto& [name, count] : counts_) {
      if (name.starts_with(prefix)) count = 0;
    }
  }
  frames_.pop_back();
  return absl::OkStatus();
}

absl::StatusOr<Variable> GetVariable(std::shared_ptr<Client> client,
                                     const VariableScope& scope,
                                     absl::string_view name,
                                     const GetVariableOptions& options) {
  v1::GetVariableRequest request;
  request.set_name(JoinName(scope.name, name));
  request.set_mode(ModeOf(scope.reuse));
  if (options.shape.has_value()) {
    request.mutable_shape()->mutable_dims()->Assign(options.shape->begin(),
                                                    options.shape->end());
  }
  request.set_dtype(options.dtype.value_or(scope.dtype));
  if (options.initializer.has_value()) {
    *request.mutable_initializer() = *options.initializer;
  } else if (scope.initializer.has_value()) {
    *request.mutable_initializer() = *scope.initializer;
  }
  if (options.trainable.has_value()) request.set_trainable(*options.trainable);
  if (options.partitioner.has_value()) {
    *request.mutable_partitioner() = *options.partitioner;
  } else if (scope.partitioner.has_value()) {
    *request.mutable_partitioner() = *scope.partitioner;
  }
  if (options.constraint.has_value()) {
    *request.mutable_constraint() = *options.constraint;
  }
  if (options.collections.has_value()) {
    request.mutable_collections()->mutable_names()->Assign(
        options.collections->begin(), options.collections->end());
  }
  VS_ASSIGN_OR_RETURN(v1::GetVariableResponse response,
                      client->GetVariable(request));
  return Variable(std::move(client), std::move(response));
}

absl::StatusOr<Variable> GetGlobalStep(std::shared_ptr<Client> client,
                                       Reuse reuse) {
  VariableScope root;
  root.reuse = reuse;
  GetVariableOptions options;
  options.shape = std::vector<int64_t>{};
  options.dtype = v1::DT_INT64;
  options.initializer = v1::Initializer();
  options.initializer->set_kind(v1::Initializer::ZEROS);
  options.trainable = false;
  options.collections = {"variables", "global_step"};
  return GetVariable(std::move(client), root, "global_step", options);
}

absl::StatusOr<Variable> GetOrCreateGlobalStep(std::shared_ptr<Client> client) {
  return GetGlobalStep(std::move(client), Reuse::kAutoReuse);
}

}  // namespace varscope
