// TensorFlow's variable scopes on the client: scope names, reuse
// inheritance, scope-level defaults, and get_variable over a Client.
#ifndef VARSCOPE_CLIENT_VARIABLE_SCOPE_H_
#define VARSCOPE_CLIENT_VARIABLE_SCOPE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/client.h"
#include "client/variable.h"

namespace varscope {

// TensorFlow's VariableScope.reuse values.
enum class Reuse {
  kFalse,      // create: the name must not exist
  kTrue,       // reuse: the name must exist
  kAutoReuse,  // get or create
};

// A scope: its full name and the defaults get_variable takes from it.
// A value type; thread-compatible.
struct VariableScope {
  std::string name;  // "" is the root
  Reuse reuse = Reuse::kFalse;
  std::optional<v1::Initializer> initializer;
  DType dtype = v1::DT_FLOAT;
  std::optional<v1::Partitioner> partitioner;

  // TensorFlow's reuse_variables(): from now on this scope reuses.
  void ReuseVariables() { reuse = Reuse::kTrue; }
};

// The arguments of TensorFlow's variable_scope(). Give a name, a captured
// scope, or a default_name.
struct ScopeArgs {
  std::optional<std::string> name;
  std::shared_ptr<const VariableScope> scope;
  std::optional<std::string> default_name;
  // nullopt or kFalse inherit the enclosing scope's reuse (or, re-entering a
  // captured scope, that scope's reuse).
  std::optional<Reuse> reuse;
  std::optional<v1::Initializer> initializer;
  std::optional<DType> dtype;
  std::optional<v1::Partitioner> partitioner;
};

// The stack of entered scopes of one thread, with TensorFlow's rules:
// reuse=True is sticky in child scopes, reuse=False/None inherits,
// AUTO_REUSE under True stays AUTO_REUSE, a re-entered captured scope keeps
// its own reuse, default_name uniquifies as name, name_1, name_2 (counters
// of child scopes reset when their parent is left). Thread-compatible.
class ScopeStack {
 public:
  ScopeStack();

  // The innermost scope (the root when nothing is entered). Mutations (e.g.
  // ReuseVariables) apply to that scope.
  std::shared_ptr<VariableScope> current() const {
    return frames_.back().scope;
  }

  // Enters a scope and returns it. INVALID_ARGUMENT with TensorFlow's texts
  // when neither a name, a scope nor a default_name is given, or when
  // default_name is used with reuse True or AUTO_REUSE; INVALID_ARGUMENT for
  // an invalid name.
  absl::StatusOr<std::shared_ptr<VariableScope>> Enter(const ScopeArgs& args);

  // Leaves the innermost scope. FAILED_PRECONDITION at the root.
  absl::Status Exit();

 private:
  struct Frame {
    std::shared_ptr<VariableScope> scope;
    // Counters to restore on exit (re-entered captured scopes only).
    std::optional<absl::flat_hash_map<std::string, int>> saved_counts;
  };
  std::string UniqueName(absl::string_view prefix) const;

  std::vector<Frame> frames_;                     // frames_[0] is the root
  absl::flat_hash_map<std::string, int> counts_;  // times each scope opened
};

struct GetVariableOptions {
  // nullopt: no shape (matches any shape when reusing); -1: unknown size.
  std::optional<std::vector<int64_t>> shape;
  // nullopt: the scope's dtype.
  std::optional<DType> dtype;
  // nullopt: the scope's initializer, else TensorFlow's default.
  std::optional<v1::Initializer> initializer;
  // nullopt: true.
  std::optional<bool> trainable;
  // nullopt: the scope's partitioner, else none.
  std::optional<v1::Partitioner> partitioner;
  // nullopt: none. Applied by the server after every optimizer step.
  std::optional<v1::Constraint> constraint;
  // Graph collections stored with a new variable. nullopt: TensorFlow's
  // default ("variables", and "trainable_variables" if trainable).
  std::optional<std::vector<std::string>> collections;
};

// TensorFlow's get_variable(name, ...) in `scope`: the full name is
// `scope.name/name`, the mode comes from scope.reuse. Returns the error of
// Client::GetVariable unchanged.
absl::StatusOr<Variable> GetVariable(std::shared_ptr<Client> client,
                                     const VariableScope& scope,
                                     absl::string_view name,
                                     const GetVariableOptions& options);

// TensorFlow's global step: the int64 scalar "global_step" at the root
// (zeros, not trainable, in the collections "variables" and "global_step"),
// got with `reuse` as GetVariable does: kFalse creates
// it (ALREADY_EXISTS if it exists), kTrue returns it (NOT_FOUND if missing),
// kAutoReuse returns it, creating it if missing.
absl::StatusOr<Variable> GetGlobalStep(std::shared_ptr<Client> client,
                                       Reuse reuse);

// GetGlobalStep(client, Reuse::kAutoReuse).
absl::StatusOr<Variable> GetOrCreateGlobalStep(std::shared_ptr<Client> client);

}  // namespace varscope

#endif  // VARSCOPE_CLIENT_VARIABLE_SCOPE_H_
