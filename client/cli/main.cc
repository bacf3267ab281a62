// varscope: the admin CLI of a varscoped server (see client/cli/cli.h).
#include "client/cli/cli.h"

int main(int argc, char** argv) {
  return varscope::cli::Run({argv + 1, argv + argc},
                            varscope::cli::ProcessEnvironment());
}
