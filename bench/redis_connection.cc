// The benchmark's operations against Redis through hiredis, as a user would
// write them: one command per read or write, pipelined where one step needs
// several commands, and WATCH/MULTI/EXEC for read-modify-write.
#include <hiredis/hiredis.h>

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "bench/connection.h"
#include "common/status.h"

namespace varscope::bench {
namespace {

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

struct ContextDeleter {
  void operator()(redisContext* context) const { redisFree(context); }
};

// A command's words.
using Command = std::vector<absl::string_view>;

class RedisConnection final : public Connection {
 public:
  RedisConnection(redisContext* context, RedisUpdate update)
      : context_(context), update_(update) {}

  absl::Status Prepare(const std::string& key,
                       const std::string& value) override {
    return Write(key, value);
  }

  absl::Status Read(const std::string& key, size_t expected_bytes) override {
    VS_ASSIGN_OR_RETURN(std::vector<Reply> replies, Run({{"GET", key}}));
    return CheckValue(key, *replies[0], expected_bytes);
  }

  absl::Status Write(const std::string& key,
                     const std::string& value) override {
    return Run({{"SET", key, value}}).status();
  }

  absl::Status Accumulate(const std::string& key,
                          const std::string& delta) override {
    return TrainStep({key}, {delta});
  }

  // Reads every key (MGET, under WATCH unless lossy), adds the grads, and
  // writes the sums back (MSET, in MULTI/EXEC unless lossy). A conflicting
  // writer aborts the EXEC: read and add again.
  absl::Status TrainStep(const std::vector<std::string>& keys,
                         const std::vector<std::string>& grads) override {
    const bool watch = update_ == RedisUpdate::kWatch;
    Command mget = {"MGET"};
    mget.insert(mget.end(), keys.begin(), keys.end());
    Command watch_keys = {"WATCH"};
    watch_keys.insert(watch_keys.end(), keys.begin(), keys.end());
    for (;;) {
      std::vector<Command> read;
      if (watch) read.push_back(watch_keys);
      read.push_back(mget);
      VS_ASSIGN_OR_RETURN(std::vector<Reply> replies, Run(read));
      const redisReply& values = *replies.back();
      if (values.type != REDIS_REPLY_ARRAY || values.elements != keys.size()) {
        return absl::FailedPreconditionError("MGET returned too few values");
      }
      std::vector<std::string> sums(keys.size());
      Command mset = {"MSET"};
      for (size_t i = 0; i < keys.size(); ++i) {
        VS_RETURN_IF_ERROR(
            CheckValue(keys[i], *values.element[i], grads[i].size()));
        sums[i].assign(values.element[i]->str, values.element[i]->len);
        AddFloats(grads[i], sums[i]);
        mset.push_back(keys[i]);
        mset.push_back(sums[i]);
      }
      if (!watch) return Run({mset}).status();
      VS_ASSIGN_OR_RETURN(replies, Run({{"MULTI"}, mset, {"EXEC"}}));
      if (replies.back()->type == REDIS_REPLY_ARRAY) return absl::OkStatus();
      ++conflicts_;  // EXEC answered nil: a watched key changed
    }
  }

  int64_t conflicts() const override { return conflicts_; }

 private:
  static absl::Status CheckValue(const std::string& key,
                                 const redisReply& reply, size_t bytes) {
    if (reply.type != REDIS_REPLY_STRING || reply.len != bytes) {
      return absl::FailedPreconditionError(
          absl::StrCat(key, " does not hold ", bytes, " bytes"));
    }
    return absl::OkStatus();
  }

  // Sends `commands` in one pipeline and returns their replies. A reply
  // that is an error fails the whole (Redis has applied the others).
  absl::StatusOr<std::vector<Reply>> Run(const std::vector<Command>& commands) {
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (const Command& command : commands) {
      argv.clear();
      lengths.clear();
      for (absl::string_view word : command) {
        argv.push_back(word.data());
        lengths.push_back(word.size());
      }
      if (redisAppendCommandArgv(context_.get(), static_cast<int>(argv.size()),
                                 argv.data(), lengths.data()) != REDIS_OK) {
        return ContextError();
      }
    }
    std::vector<Reply> replies;
    for (size_t i = 0; i < commands.size(); ++i) {
      void* reply = nullptr;
      if (redisGetReply(context_.get(), &reply) != REDIS_OK) {
        return ContextError();
      }
      replies.emplace_back(static_cast<redisReply*>(reply));
    }
    for (const Reply& reply : replies) {
      if (reply->type == REDIS_REPLY_ERROR) {
        return absl::InternalError(
            absl::StrCat("Redis: ", absl::string_view(reply->str, reply->len)));
      }
    }
    return replies;
  }

  absl::Status ContextError() const {
    return absl::UnavailableError(absl::StrCat("Redis: ", context_->errstr));
  }

  const std::unique_ptr<redisContext, ContextDeleter> context_;
  const RedisUpdate update_;
  int64_t conflicts_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Connection>> ConnectRedis(
    const std::string& address, RedisUpdate update) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(address).substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat("Not HOST:PORT: ", address));
  }
  const std::string host = address.substr(0, colon);
  redisContext* context = redisConnect(host.c_str(), port);
  if (context == nullptr) return absl::ResourceExhaustedError("redisConnect");
  if (context->err != 0) {
    absl::Status status = absl::UnavailableError(
        absl::StrCat("Redis at ", address, ": ", context->errstr));
    redisFree(context);
    return status;
  }
  return std::make_unique<RedisConnection>(context, update);
}

}  // namespace varscope::bench
