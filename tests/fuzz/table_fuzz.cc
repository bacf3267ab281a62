// Runs a program of variable-table calls read from the input against a real
// store (see TableHarness for what every call is checked for), reopening the
// store now and then and at the end.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_input.h"
#include "tests/fuzz/fuzz_requests.h"
#include "tests/fuzz/table_harness.h"

namespace varscope::fuzz {
namespace {

// Calls per input: enough to build and break a few variables.
constexpr int kMaxCalls = 40;

void RunCall(FuzzInput& in, TableHarness& table) {
  const auto& known = table.known();
  switch (in.InRange(0, 15)) {
    case 0:
    case 1:
    case 2:
    case 3:
      table.GetVariable(FuzzGetVariable(in, known));
      break;
    case 4:
    case 5:
    case 6:
    case 7:
      table.BatchUpdate(FuzzBatchUpdate(in, known));
      break;
    case 8:
      table.Read(FuzzName(in, known));
      break;
    case 9:
      table.Gather(FuzzGather(in, known));
      break;
    case 10:
      table.List(FuzzList(in, known));
      break;
    case 11:
      table.BatchRead(FuzzBatchRead(in, known));
      break;
    case 12: {
      const std::string name = FuzzName(in, known);
      table.Delete(name, in.Bool());
      break;
    }
    case 13: {
      const std::string old_name = FuzzName(in, known);
      table.Rename(old_name, FuzzName(in, known));
      break;
    }
    case 14:
      table.Stat(FuzzName(in, known));
      break;
    default:
      if (in.Bool()) {
        table.Reopen();
      } else {
        table.Flush();
      }
      break;
  }
}

}  // namespace
}  // namespace varscope::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  varscope::fuzz::FuzzInput in(data, size);
  varscope::fuzz::TableHarness table(/*interval=*/in.Bool());
  for (int i = 0; i < varscope::fuzz::kMaxCalls && !in.empty(); ++i) {
    varscope::fuzz::RunCall(in, table);
  }
  table.Reopen();
  return 0;
}
