#include "client/cli/cli.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/browse.h"
#include "client/cli/command.h"
#include "client/cli/edit.h"
#include "client/cli/format.h"
#include "client/cli/inspect.h"
#include "client/cli/reshard.h"
#include "client/cli/server_commands.h"
#include "client/cli/store_commands.h"
#include "client/cli/transfer.h"
#include "common/cluster.h"
#include "common/status.h"
#include "common/version.h"

namespace varscope::cli {
namespace {

constexpr char kDefaultServer[] = "127.0.0.1:7070";

// A file the user named (by a flag or an environment variable) that cannot
// be read is a usage error.
absl::StatusOr<std::string> ReadNamedFile(const std::string& path,
                                          absl::string_view what) {
  absl::StatusOr<std::string> content = ReadCredentialFile(path, what);
  if (!content.ok()) {
    return absl::InvalidArgumentError(content.status().message());
  }
  return content;
}

// A subcommand and how to run it once parsed.
struct Command {
  CLI::App* app;
  std::function<absl::Status(const CommandContext&)> run;
};

// Drops trailing '/' from a scope or name ("model/" lists model).
std::string StripSlashes(std::string& text) {
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  return "";
}

// A scope or name argument (positional, or an option when `name` starts
// with "--"), with trailing '/' dropped.
CLI::Option* AddName(CLI::App* sub, const std::string& name, std::string& value,
                     const std::string& description) {
  return sub->add_option(name, value, description)
      ->transform(CLI::Validator(StripSlashes, "", "strip-slashes"));
}

// The varscope command line: CLI11's definitions, bound to the option
// structs that the chosen command runs with after Parse. Not copyable: the
// bindings point into it.
class CommandLine {
 public:
  CommandLine();
  CommandLine(const CommandLine&) = delete;
  CommandLine& operator=(const CommandLine&) = delete;

  // Parses `args`. On --help or a usage error prints CLI11's text to env's
  // streams and returns the exit code; otherwise returns nullopt.
  std::optional<int> Parse(const std::vector<std::string>& args,
                           const Environment& env);

  // REQUIRES: Parse returned nullopt.
  const Command& command() const;
  // The --server flag, if given.
  std::optional<std::string> server() const;
  // The --tls-ca and --token-file flags ("" if not given).
  const std::string& tls_ca_file() const { return tls_ca_file_; }
  const std::string& token_file() const { return token_file_; }
  // The --tls-cert and --tls-key flags ("" if not given).
  const std::string& tls_cert_file() const { return tls_cert_file_; }
  const std::string& tls_key_file() const { return tls_key_file_; }
  // The context of the chosen command, without client and address.
  CommandContext Context(const Environment& env) const;

 private:
  CLI::App* AddCommand(const std::string& name, const std::string& description,
                       std::function<absl::Status(const CommandContext&)> run);
  void AddGlobalOptions();
  void AddBrowseCommands();
  void AddInspectCommands();
  void AddEditCommands();
  void AddTransferCommands();
  void AddServerCommands();
  void AddStoreCommands();

  CLI::App app_;
  std::vector<Command> commands_;

  std::string server_;
  CLI::Option* server_option_ = nullptr;
  std::string tls_ca_file_;
  std::string token_file_;
  std::string tls_cert_file_;
  std::string tls_key_file_;
  bool json_ = false;
  double timeout_seconds_ = 30;
  int32_t page_size_ = 0;

  LsOptions ls_;
  TreeOptions tree_;
  FindOptions find_;
  DuOptions du_;
  ShowOptions show_;
  GetOptions get_;
  DiagnoseOptions diagnose_;
  std::string diagnose_shape_;
  std::string diagnose_dtype_;
  SetOptions set_;
  std::string set_value_;
  std::string set_npy_;
  CLI::Option* set_value_option_ = nullptr;
  RmOptions rm_;
  MvOptions mv_;
  ExportOptions export_;
  ImportOptions import_;
  EmbeddingTransferOptions embedding_export_;
  EmbeddingTransferOptions embedding_import_;
  std::string import_into_;
  CLI::Option* import_into_option_ = nullptr;
  double stats_interval_ = 1;
  TopOptions top_;
  double top_interval_ = 1;
  CopyOptions checkpoint_;
  BackupOptions backup_;
  RestoreOptions restore_;
  ReshardOptions reshard_;
};

CommandLine::CommandLine()
    : app_(
          "varscope: browse scopes, inspect and repair variables, and "
          "diagnose 'variable not found' on a varscoped server.",
          "varscope") {
  app_.require_subcommand(1, 1);
  app_.set_version_flag("--version", VersionLine("varscope"));
  app_.fallthrough();
  app_.footer(
      "Exit codes: 0 ok, 1 not found, 2 usage (bad option, name, value or "
      "shape), 3 server or other error.\nRun 'varscope COMMAND --help' for a "
      "command's options.");
  AddGlobalOptions();
  AddBrowseCommands();
  AddInspectCommands();
  AddEditCommands();
  AddTransferCommands();
  AddServerCommands();
  AddStoreCommands();
}

CLI::App* CommandLine::AddCommand(
    const std::string& name, const std::string& description,
    std::function<absl::Status(const CommandContext&)> run) {
  CLI::App* sub = app_.add_subcommand(name, description);
  commands_.push_back({sub, std::move(run)});
  return sub;
}

void CommandLine::AddGlobalOptions() {
  server_option_ = app_.add_option(
      "--server", server_,
      "Server HOST:PORT, or a cluster's shards HOST:PORT,HOST:PORT,... "
      "Default: $VARSCOPE_SERVER, else the ps tasks of $TF_CONFIG, else "
      "127.0.0.1:7070");
  app_.add_option("--tls-ca", tls_ca_file_,
                  "PEM file of the CA that signed the servers' certificates: "
                  "connect with TLS. Default: $VARSCOPE_TLS_CA, else "
                  "plaintext");
  app_.add_option("--token-file", token_file_,
                  "File holding the token to send (needs TLS). Default: the "
                  "token in $VARSCOPE_TOKEN, else none");
  app_.add_option("--tls-cert", tls_cert_file_,
                  "PEM file of this client's certificate (chain), for servers "
                  "that require client certificates (with --tls-key and "
                  "--tls-ca)");
  app_.add_option("--tls-key", tls_key_file_,
                  "PEM file of the private key of --tls-cert");
  app_.add_flag("--json", json_, "Print JSON (for scripts)");
  app_.add_option("--timeout", timeout_seconds_,
                  "Deadline of each server call, in seconds (default: 30)")
      ->check(CLI::PositiveNumber);
  app_.add_option("--page-size", page_size_,
                  "Entries per listing page (default: the server's, 1000)")
      ->check(CLI::Range(1, 10000));
}

void CommandLine::AddBrowseCommands() {
  CLI::App* sub =
      AddCommand("ls", "List the children of a scope (streams pages)",
                 [this](const CommandContext& c) { return Ls(c, ls_); });
  AddName(sub, "scope", ls_.scope, "Scope to list (default: the root)");
  sub->add_flag("-r,--recursive", ls_.recursive,
                "Every variable under the scope");
  sub->add_option("-d,--depth", ls_.depth,
                  "Scopes and variables down to N levels")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--names", ls_.names_only, "Only full names, one per line");

  sub = AddCommand("tree", "Show the hierarchy with variable counts and bytes",
                   [this](const CommandContext& c) { return Tree(c, tree_); });
  AddName(sub, "scope", tree_.scope, "Scope to show (default: the root)");
  sub->add_option("-d,--depth", tree_.depth, "Print N levels")
      ->check(CLI::PositiveNumber);

  sub = AddCommand("find", "Find variables by glob pattern",
                   [this](const CommandContext& c) { return Find(c, find_); });
  sub->add_option("pattern", find_.pattern,
                  "Glob over full names: * within a segment, ** across "
                  "segments, ? one character (e.g. 'model/**/Adam*')")
      ->required();
  sub->add_flag("--names", find_.names_only, "Only full names, one per line");

  sub = AddCommand("du", "Bytes per scope, largest first",
                   [this](const CommandContext& c) { return Du(c, du_); });
  AddName(sub, "scope", du_.scope, "Scope (default: the root)");
  sub->add_option("-d,--depth", du_.depth, "Scopes down to N levels")
      ->check(CLI::PositiveNumber);
}

void CommandLine::AddInspectCommands() {
  CLI::App* sub =
      AddCommand("show", "Show a variable's metadata and value statistics",
                 [this](const CommandContext& c) { return Show(c, show_); });
  AddName(sub, "name", show_.name, "Variable (or partitioned variable)")
      ->required();
  sub->add_flag("--full", show_.full, "Print every value");
  sub->add_option("--hottest", show_.hottest,
                  "Embedding variables: how many of the most frequent keys "
                  "to list")
      ->check(CLI::NonNegativeNumber);

  sub = AddCommand("get", "Print a variable's value",
                   [this](const CommandContext& c) { return Get(c, get_); });
  AddName(sub, "name", get_.name, "Variable (or partitioned variable)")
      ->required();

  sub = AddCommand(
      "diagnose",
      "Explain why get_variable(NAME, reuse=True) fails or succeeds",
      [this](const CommandContext& c) -> absl::Status {
        DiagnoseOptions options = diagnose_;
        if (!diagnose_shape_.empty()) {
          VS_ASSIGN_OR_RETURN(options.shape, ParseShapeText(diagnose_shape_));
        }
        if (!diagnose_dtype_.empty()) {
          VS_ASSIGN_OR_RETURN(options.dtype, ParseDType(diagnose_dtype_));
        }
        return Diagnose(c, options);
      });
  AddName(sub, "name", diagnose_.name, "Full variable name")->required();
  sub->add_option("--shape", diagnose_shape_,
                  "The shape your code passes, e.g. 10,1 (-1: unknown)");
  sub->add_option("--dtype", diagnose_dtype_,
                  "The dtype your code passes, e.g. float32");
}

void CommandLine::AddEditCommands() {
  CLI::App* sub = AddCommand("set", "Replace a variable's value",
                             [this](const CommandContext& c) {
                               SetOptions options = set_;
                               if (set_value_option_->count() > 0) {
                                 options.value = set_value_;
                               } else {
                                 options.npy_path = set_npy_;
                               }
                               return Set(c, options);
                             });
  AddName(sub, "name", set_.name, "Variable (or partitioned variable)")
      ->required();
  CLI::Option_group* value =
      sub->add_option_group("value", "The new value (give exactly one)");
  set_value_option_ = value->add_option(
      "--value", set_value_,
      "JSON: nested lists of the variable's shape, or one element for all "
      "(e.g. '[[1, 2], [3, 4]]', 0, \"nan\")");
  value->add_option("--from-npy", set_npy_,
                    "A .npy file of the variable's dtype and shape (float32 "
                    "for bfloat16)");
  value->require_option(1);

  sub = AddCommand("rm", "Delete a variable or (-r) a scope",
                   [this](const CommandContext& c) { return Rm(c, rm_); });
  AddName(sub, "name", rm_.name, "Variable, or scope with -r")->required();
  sub->add_flag("-r,--recursive", rm_.recursive,
                "Also everything under NAME/ (asks to confirm)");
  sub->add_flag("-y,--yes", rm_.yes, "Do not ask to confirm");
  sub->add_flag("-n,--dry-run", rm_.dry_run,
                "List what would be deleted; delete nothing");

  sub = AddCommand("mv", "Rename a variable or a whole scope, atomically",
                   [this](const CommandContext& c) { return Mv(c, mv_); });
  AddName(sub, "old", mv_.old_name, "Variable or scope")->required();
  AddName(sub, "new", mv_.new_name, "New name")->required();
}

void CommandLine::AddTransferCommands() {
  CLI::App* sub = AddCommand(
      "export", "Write a scope to a NumPy .npz plus a JSON metadata sidecar",
      [this](const CommandContext& c) { return Export(c, export_); });
  AddName(sub, "scope", export_.scope,
          "Scope or variable (default: everything)");
  sub->add_option("-o,--output", export_.path, "The .npz to write")->required();
  sub->add_option("--metadata", export_.metadata_path,
                  "The sidecar to write (default: OUTPUT.json)");

  sub = AddCommand("import", "Create variables from an exported .npz",
                   [this](const CommandContext& c) {
                     ImportOptions options = import_;
                     if (import_into_option_->count() > 0) {
                       options.into = import_into_;
                     }
                     return Import(c, options);
                   });
  sub->add_option("file", import_.path, "The .npz to read")->required();
  import_into_option_ = AddName(sub, "--into", import_into_,
                                "Put the variables under this scope, named "
                                "relative to the exported scope");
  sub->add_flag("--overwrite", import_.overwrite,
                "Replace existing variables (default: fail if any exists)");
  sub->add_option("--metadata", import_.metadata_path,
                  "The sidecar (default: FILE.json when it exists)");

  sub = AddCommand(
      "embedding-export",
      "Write an embedding variable's rows (keys, values, frequencies, last "
      "steps) to a NumPy .npz",
      [this](const CommandContext& c) {
        return EmbeddingExport(c, embedding_export_);
      });
  AddName(sub, "name", embedding_export_.name, "Embedding variable")
      ->required();
  sub->add_option("-o,--output", embedding_export_.path, "The .npz to write")
      ->required();
  sub = AddCommand(
      "embedding-import",
      "Store rows from a .npz (keys.npy, values.npy) in an embedding variable",
      [this](const CommandContext& c) {
        return EmbeddingImport(c, embedding_import_);
      });
  AddName(sub, "name", embedding_import_.name, "Embedding variable")
      ->required();
  sub->add_option("file", embedding_import_.path, "The .npz to read")
      ->required();
}

void CommandLine::AddServerCommands() {
  CLI::App* sub = AddCommand(
      "stats", "Server version, uptime, variables, bytes and calls/s",
      [this](const CommandContext& c) {
        StatsOptions options;
        options.interval = absl::Seconds(stats_interval_);
        return Stats(c, options);
      });
  sub->add_option("--interval", stats_interval_,
                  "Seconds between the two samples for calls/s; 0: only "
                  "averages since start (default: 1)")
      ->check(CLI::NonNegativeNumber);

  sub = AddCommand("top", "Live per-variable update rates, busiest first",
                   [this](const CommandContext& c) {
                     TopOptions options = top_;
                     options.interval = absl::Seconds(top_interval_);
                     return Top(c, options);
                   });
  AddName(sub, "scope", top_.scope, "Scope to watch (default: everything)");
  sub->add_option("--interval", top_interval_,
                  "Seconds between refreshes (default: 1)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--count", top_.count,
                  "Refreshes before exiting (default: until interrupted)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--limit", top_.limit,
                  "Variables per refresh, 0 for all (default: 20)")
      ->check(CLI::NonNegativeNumber);

  AddCommand("health",
             "Ask the grpc.health.v1 service; exit 0 only when SERVING",
             [](const CommandContext& c) { return Health(c); });
}

void CommandLine::AddStoreCommands() {
  CLI::App* sub = AddCommand(
      "checkpoint",
      "Write a consistent checkpoint of the server's store (an openable data "
      "directory) into a new directory on the server's machine",
      [this](const CommandContext& c) { return Checkpoint(c, checkpoint_); });
  sub->add_option(
         "directory", checkpoint_.directory,
         "Path on the server's machine, under its --backup-root (relative: "
         "taken under it); must not exist")
      ->required();
  sub->add_flag("--versions", checkpoint_.versions,
                "Also print every variable's version in the checkpoint");

  sub = AddCommand(
      "backup",
      "Add a consistent, incremental backup of the server's store to a "
      "backup directory on the server's machine",
      [this](const CommandContext& c) { return Backup(c, backup_); });
  sub->add_option(
         "directory", backup_.directory,
         "Path on the server's machine, under its --backup-root (relative: "
         "taken under it); created if missing")
      ->required();
  sub->add_flag("--versions", backup_.versions,
                "Also print every variable's version in the backup");
  sub->add_option("--keep", backup_.keep,
                  "Then delete the oldest backups in the directory so that "
                  "the newest N remain (default: keep all)")
      ->check(CLI::Validator(
          [](const std::string& value) -> std::string {
            return value == "0" ? "0 would delete the newest backup: keep at "
                                  "least 1"
                                : "";
          },
          "N>=1"));

  sub = AddCommand(
      "reshard",
      "Move a cluster's variables to the shards a new shard list places them "
      "on, and record the new list on every shard (start new shards first; "
      "safe to run again if interrupted)",
      [this](const CommandContext& c) { return Reshard(c, reshard_); });
  sub->add_option("--from", reshard_.from,
                  "The cluster's shards now, HOST:PORT,... in cluster order")
      ->required();
  sub->add_option("--to", reshard_.to,
                  "The shards after, HOST:PORT,... in the new order")
      ->required();
  sub->add_option("--cluster-id", reshard_.cluster_id,
                  "The new cluster's id (default: derived from --to)");

  AddCommand("recover",
             "Complete the steps that dead workers left half applied on a "
             "cluster's shards (--server lists them all, in order)",
             [](const CommandContext& c) { return Recover(c); });

  sub = AddCommand(
      "restore",
      "On this machine (no server): restore a backup, or copy a checkpoint, "
      "into a new data directory and check it",
      [this](const CommandContext& c) { return Restore(c, restore_); });
  sub->add_option("source", restore_.source,
                  "A backup directory (see backup) or a checkpoint")
      ->required();
  sub->add_option("data_dir", restore_.data_dir,
                  "The new data directory: missing or empty");
  CLI::Option* backup_id =
      sub->add_option("--backup-id", restore_.backup_id,
                      "The backup to restore (default: the latest)")
          ->check(CLI::PositiveNumber);
  sub->add_option("--cut", restore_.cut,
                  "The backup of this cluster cut (the id a cluster backup "
                  "printed; the same on every shard)")
      ->excludes(backup_id);
  sub->add_flag("--list", restore_.list,
                "List the backups in SOURCE instead of restoring");
}

std::optional<int> CommandLine::Parse(const std::vector<std::string>& args,
                                      const Environment& env) {
  try {
    app_.parse(std::vector<std::string>(args.rbegin(), args.rend()));
  } catch (const CLI::Error& e) {
    return app_.exit(e, *env.out, *env.err) == 0 ? kExitOk : kExitUsage;
  }
  return std::nullopt;
}

const Command& CommandLine::command() const {
  return *std::find_if(commands_.begin(), commands_.end(),
                       [](const Command& c) { return c.app->parsed(); });
}

std::optional<std::string> CommandLine::server() const {
  if (server_option_->count() == 0) return std::nullopt;
  return server_;
}

CommandContext CommandLine::Context(const Environment& env) const {
  CommandContext context;
  context.timeout = absl::Seconds(timeout_seconds_);
  context.out = env.out;
  context.err = env.err;
  context.in = env.in;
  context.json = json_;
  context.progress = env.err_is_terminal;
  context.page_size = page_size_;
  return context;
}

}  // namespace

int ExitCode(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kInvalidArgument:
      return kExitUsage;
    default:
      return kExitError;
  }
}

Environment ProcessEnvironment() {
  Environment env;
  env.out = &std::cout;
  env.err = &std::cerr;
  env.in = &std::cin;
  env.getenv = [](const std::string& name) -> std::optional<std::string> {
    const char* value = ::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
  env.err_is_terminal = isatty(STDERR_FILENO) == 1;
  return env;
}

absl::StatusOr<std::string> ResolveServerAddress(
    const std::optional<std::string>& flag, const Environment& env) {
  if (flag.has_value()) return *flag;
  if (std::optional<std::string> server = env.getenv("VARSCOPE_SERVER");
      server.has_value() && !server->empty()) {
    return *server;
  }
  const std::optional<std::string> tf_config = env.getenv("TF_CONFIG");
  if (!tf_config.has_value() || tf_config->empty()) return kDefaultServer;
  absl::StatusOr<TfConfig> config = ParseTfConfig(*tf_config);
  if (!config.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        config.status().message(), "; pass --server or fix TF_CONFIG"));
  }
  if (config->ps.empty()) return kDefaultServer;
  return absl::StrJoin(config->ps, ",");
}

absl::StatusOr<ClientSecurity> ResolveSecurity(const std::string& tls_ca_file,
                                               const std::string& token_file,
                                               const std::string& tls_cert_file,
                                               const std::string& tls_key_file,
                                               const Environment& env) {
  ClientSecurity security;
  if (tls_cert_file.empty() != tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key go together: a client certificate needs "
        "its key");
  }
  if (!tls_cert_file.empty()) {
    VS_ASSIGN_OR_RETURN(security.tls_cert_chain,
                        ReadNamedFile(tls_cert_file, "TLS client certificate"));
    VS_ASSIGN_OR_RETURN(security.tls_private_key,
                        ReadNamedFile(tls_key_file, "TLS client key"));
  }
  std::string ca = tls_ca_file;
  if (ca.empty()) ca = env.getenv("VARSCOPE_TLS_CA").value_or("");
  if (!ca.empty()) {
    VS_ASSIGN_OR_RETURN(security.tls_root_certs, ReadNamedFile(ca, "TLS CA"));
  }
  if (!token_file.empty()) {
    VS_ASSIGN_OR_RETURN(security.auth_token,
                        ReadNamedFile(token_file, "token"));
  } else {
    security.auth_token = env.getenv("VARSCOPE_TOKEN").value_or("");
  }
  security.auth_token =
      std::string(absl::StripAsciiWhitespace(security.auth_token));
  return security;
}

int Run(const std::vector<std::string>& args, const Environment& env) {
  CommandLine command_line;
  if (std::optional<int> code = command_line.Parse(args, env)) return *code;
  const Command& command = command_line.command();
  auto fail = [&](const absl::Status& status) {
    *env.err << "varscope " << command.app->get_name() << ": "
             << absl::StatusCodeToString(status.code()) << ": "
             << status.message() << "\n";
    return ExitCode(status);
  };
  absl::StatusOr<std::string> address =
      ResolveServerAddress(command_line.server(), env);
  if (!address.ok()) return fail(address.status());
  CommandContext context = command_line.Context(env);
  absl::StatusOr<ClientSecurity> security = ResolveSecurity(
      command_line.tls_ca_file(), command_line.token_file(),
      command_line.tls_cert_file(), command_line.tls_key_file(), env);
  if (!security.ok()) return fail(security.status());
  context.security = *security;
  ClientOptions client_options;
  client_options.timeout = context.timeout;
  // An operator's command reports a server that is down within seconds
  // instead of waiting for it as a worker would.
  client_options.retry_timeout = absl::Seconds(2);
  // Changes only when asked to (`varscope recover`).
  client_options.recover_after = absl::InfiniteDuration();
  client_options.security = context.security;
  context.client = Client::Connect(*address, client_options);
  context.server_address = *address;
  const absl::Status status = command.run(context);
  env.out->flush();
  return status.ok() ? kExitOk : fail(status);
}

}  // namespace varscope::cli
