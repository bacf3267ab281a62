#include "client/cli/browse.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/cli/format.h"
#include "client/cli/glob.h"
#include "client/cli/listing.h"
#include "common/names.h"
#include "common/status.h"

namespace varscope::cli {
namespace {

using Json = nlohmann::json;

// Prints listing entries as aligned text lines, bare names, or a JSON
// array, as they arrive.
class EntryPrinter {
 public:
  EntryPrinter(const CommandContext& context, bool names_only)
      : out_(context.out), names_only_(names_only) {
    if (context.json) json_.emplace(context.out);
  }

  void Print(const ListEntry& entry) {
    ++printed_;
    if (json_.has_value()) {
      Json element = entry.is_scope() ? Json{{"name", entry.name()}}
                                      : VariableInfoToJson(entry.variable());
      element["kind"] = entry.is_scope() ? "scope" : "variable";
      json_->Add(element);
      return;
    }
    if (names_only_) {
      *out_ << entry.name() << (entry.is_scope() ? "/" : "") << "\n";
      return;
    }
    if (printed_ == 1) {
      *out_ << absl::StrFormat("%-8s %-8s %-14s %10s %8s  %s\n", "KIND",
                               "DTYPE", "SHAPE", "BYTES", "VERSION", "NAME");
    }
    if (entry.is_scope()) {
      *out_ << absl::StrFormat("%-8s %-8s %-14s %10s %8s  %s/\n", "scope", "-",
                               "-", "-", "-", entry.name());
      return;
    }
    const v1::VariableInfo& v = entry.variable();
    *out_ << absl::StrFormat("%-8s %-8s %-14s %10s %8d  %s\n", "variable",
                             DTypeName(v.dtype()), ShapeText(v.shape()),
                             HumanBytes(v.byte_size()), v.version(),
                             entry.name());
  }

  // Pushes what is printed so far to the reader.
  void Flush() { out_->flush(); }

  // Ends the output. REQUIRES: called once, after the last Print.
  void Close() {
    if (json_.has_value()) json_->Close();
    Flush();
  }

  int64_t printed() const { return printed_; }

 private:
  std::ostream* out_;
  const bool names_only_;
  std::optional<JsonArrayWriter> json_;
  int64_t printed_ = 0;
};

ListEntry VariableEntry(v1::VariableInfo info) {
  ListEntry entry;
  entry.set_name(info.name());
  *entry.mutable_variable() = std::move(info);
  return entry;
}

// Prints the children of `scope` at `level` (1 for the listed scope's
// children), descending into child scopes while level < max_depth.
absl::Status ListLevel(const CommandContext& context, absl::string_view scope,
                       int level, int max_depth, EntryPrinter& printer) {
  return ForEachPage(
      *context.client, scope, /*recursive=*/false, context.page_size,
      [&](const v1::ListVariablesResponse& page) {
        for (const ListEntry& entry : page.entries()) {
          printer.Print(entry);
          if (entry.is_scope() && level < max_depth) {
            VS_RETURN_IF_ERROR(ListLevel(context, entry.name(), level + 1,
                                         max_depth, printer));
          }
        }
        printer.Flush();
        return absl::OkStatus();
      });
}

// A scope's totals, with its child scopes and (optionally) its variables.
struct ScopeNode {
  std::string name;  // full name; "" is the root
  int64_t variables = 0;
  int64_t bytes = 0;
  std::map<std::string, std::unique_ptr<ScopeNode>> scopes;  // by leaf
  std::vector<v1::VariableInfo> own;  // variables directly inside
};

// Totals of `root` and of each scope under it down to `depth` levels (0:
// all); variables within `depth` are kept in their scope's `own` when
// `keep_variables`.
absl::StatusOr<std::unique_ptr<ScopeNode>> BuildScopeTree(
    const CommandContext& context, const std::string& root, int depth,
    bool keep_variables) {
  auto tree = std::make_unique<ScopeNode>();
  tree->name = root;
  VS_RETURN_IF_ERROR(ForEachVariable(
      *context.client, root, context.page_size,
      [&](const v1::VariableInfo& info) {
        const absl::string_view relative =
            info.name() == root ? LeafName(info.name())
            : root.empty()
                ? absl::string_view(info.name())
                : absl::string_view(info.name()).substr(root.size() + 1);
        const std::vector<absl::string_view> segments =
            absl::StrSplit(relative, '/');
        const int scopes = static_cast<int>(segments.size()) - 1;
        ScopeNode* node = tree.get();
        node->variables += 1;
        node->bytes += info.byte_size();
        for (int i = 0; i < scopes && (depth == 0 || i < depth); ++i) {
          std::unique_ptr<ScopeNode>& child =
              node->scopes[std::string(segments[i])];
          if (child == nullptr) {
            child = std::make_unique<ScopeNode>();
            child->name = JoinName(node->name, segments[i]);
          }
          node = child.get();
          node->variables += 1;
          node->bytes += info.byte_size();
        }
        if (keep_variables && (depth == 0 || scopes < depth)) {
          node->own.push_back(info);
        }
        return absl::OkStatus();
      }));
  return tree;
}

std::string ScopeLabel(const ScopeNode& node, absl::string_view label) {
  return absl::StrCat(label, "  (", VariablesText(node.variables), ", ",
                      HumanBytes(node.bytes), ")");
}

std::string VariableLabel(const v1::VariableInfo& info) {
  return absl::StrCat(LeafName(info.name()), "  ", DTypeName(info.dtype()), " ",
                      ShapeText(info.shape()), "  ",
                      HumanBytes(info.byte_size()));
}

// A scope's children in name order: scopes and variables mixed.
struct Child {
  absl::string_view leaf;
  const ScopeNode* scope = nullptr;
  const v1::VariableInfo* variable = nullptr;
};
std::vector<Child> Children(const ScopeNode& node) {
  std::vector<Child> children;
  for (const auto& [leaf, scope] : node.scopes) {
    children.push_back({leaf, scope.get(), nullptr});
  }
  for (const v1::VariableInfo& info : node.own) {
    children.push_back({LeafName(info.name()), nullptr, &info});
  }
  std::stable_sort(
      children.begin(), children.end(),
      [](const Child& a, const Child& b) { return a.leaf < b.leaf; });
  return children;
}

void PrintTreeText(const ScopeNode& node, const std::string& prefix,
                   std::ostream& out) {
  const std::vector<Child> children = Children(node);
  for (size_t i = 0; i < children.size(); ++i) {
    const bool last = i + 1 == children.size();
    const Child& c = children[i];
    out << prefix << (last ? "└── " : "├── ")
        << (c.scope != nullptr ? ScopeLabel(*c.scope, absl::StrCat(c.leaf, "/"))
                               : VariableLabel(*c.variable))
        << "\n";
    if (c.scope != nullptr) {
      PrintTreeText(*c.scope, prefix + (last ? "    " : "│   "), out);
    }
  }
}

Json TreeToJson(const ScopeNode& node) {
  Json children = Json::array();
  for (const Child& c : Children(node)) {
    if (c.scope != nullptr) {
      children.push_back(TreeToJson(*c.scope));
    } else {
      children.push_back(
          {{"name", c.variable->name()},
           {"kind", "variable"},
           {"dtype", std::string(DTypeName(c.variable->dtype()))},
           {"shape", Dims(c.variable->shape())},
           {"bytes", c.variable->byte_size()},
           {"version", c.variable->version()}});
    }
  }
  return {{"name", node.name},
          {"kind", "scope"},
          {"variables", node.variables},
          {"bytes", node.bytes},
          {"children", std::move(children)}};
}

void Flatten(const ScopeNode& node, std::vector<const ScopeNode*>& out) {
  out.push_back(&node);
  for (const auto& [leaf, child] : node.scopes) Flatten(*child, out);
}

std::string RootLabel(absl::string_view scope) {
  return scope.empty() ? "(root)" : std::string(scope);
}

}  // namespace

absl::Status Ls(const CommandContext& context, const LsOptions& options) {
  EntryPrinter printer(context, options.names_only);
  absl::Status status;
  if (options.recursive && options.depth == 0) {
    status = ForEachPage(*context.client, options.scope, /*recursive=*/true,
                         context.page_size,
                         [&](const v1::ListVariablesResponse& page) {
                           for (const ListEntry& e : page.entries()) {
                             printer.Print(e);
                           }
                           printer.Flush();
                           return absl::OkStatus();
                         });
  } else {
    status = ListLevel(context, options.scope, 1, std::max(options.depth, 1),
                       printer);
  }
  VS_RETURN_IF_ERROR(status);
  if (printer.printed() == 0 && !options.scope.empty()) {
    VS_ASSIGN_OR_RETURN(v1::VariableInfo info,
                        context.client->Stat(options.scope));
    printer.Print(VariableEntry(std::move(info)));
  }
  printer.Close();
  return absl::OkStatus();
}

absl::Status Tree(const CommandContext& context, const TreeOptions& options) {
  VS_ASSIGN_OR_RETURN(
      std::unique_ptr<ScopeNode> tree,
      BuildScopeTree(context, options.scope, options.depth, true));
  if (context.json) {
    *context.out << DumpJson(TreeToJson(*tree)) << "\n";
    return absl::OkStatus();
  }
  *context.out << ScopeLabel(*tree, options.scope.empty()
                                        ? "(root)"
                                        : absl::StrCat(options.scope, "/"))
               << "\n";
  PrintTreeText(*tree, "", *context.out);
  return absl::OkStatus();
}

absl::Status Find(const CommandContext& context, const FindOptions& options) {
  const std::string scope = GlobScope(options.pattern);
  EntryPrinter printer(context, options.names_only);
  // `**` matches zero segments: the scope itself may be a match.
  if (!scope.empty() && GlobMatch(options.pattern, scope)) {
    absl::StatusOr<v1::VariableInfo> info = context.client->Stat(scope);
    if (info.ok()) {
      printer.Print(VariableEntry(*std::move(info)));
    } else if (!absl::IsNotFound(info.status())) {
      return info.status();
    }
  }
  VS_RETURN_IF_ERROR(ForEachPage(*context.client, scope, /*recursive=*/true,
                                 context.page_size,
                                 [&](const v1::ListVariablesResponse& page) {
                                   for (const ListEntry& e : page.entries()) {
                                     if (GlobMatch(options.pattern, e.name()))
                                       printer.Print(e);
                                   }
                                   printer.Flush();
                                   return absl::OkStatus();
                                 }));
  if (printer.printed() == 0) {
    return absl::NotFoundError(
        absl::StrCat("No variable matches ", options.pattern));
  }
  printer.Close();
  return absl::OkStatus();
}

absl::Status Du(const CommandContext& context, const DuOptions& options) {
  VS_ASSIGN_OR_RETURN(
      std::unique_ptr<ScopeNode> tree,
      BuildScopeTree(context, options.scope, options.depth, false));
  std::vector<const ScopeNode*> scopes;
  Flatten(*tree, scopes);
  std::sort(
      scopes.begin(), scopes.end(), [](const ScopeNode* a, const ScopeNode* b) {
        return a->bytes != b->bytes ? a->bytes > b->bytes : a->name < b->name;
      });
  if (context.json) {
    JsonArrayWriter writer(context.out);
    for (const ScopeNode* s : scopes) {
      writer.Add({{"scope", s->name},
                  {"bytes", s->bytes},
                  {"variables", s->variables}});
    }
    writer.Close();
    return absl::OkStatus();
  }
  *context.out << absl::StrFormat("%10s %10s  %s\n", "BYTES", "VARIABLES",
                                  "SCOPE");
  for (const ScopeNode* s : scopes) {
    *context.out << absl::StrFormat("%10s %10d  %s\n", HumanBytes(s->bytes),
                                    s->variables, RootLabel(s->name));
  }
  return absl::OkStatus();
}

}  // namespace varscope::cli
