// The README's first screen works as written: the test reads README.md's
// first code block and the Makefile's `run` recipe, starts fieldsyncd the way
// `make run` does (the recipe's own flags, with the Makefile's defaults for
// DEMO; the built binaries for ./build/release/...; a fresh data directory;
// port 0 for LISTEN), reads the admin token and the three fieldctl commands
// it prints, runs them as printed through /bin/sh in a fresh directory and
// wants exit 0 and output from each. It fails when the README, the Makefile
// or what fieldsyncd prints drift apart:
//   - the first code block must start the server with `make run`, and its
//     comment must name the Makefile's LISTEN and DATA_DIR defaults;
//   - the README's "first admin token: ..." and "<data_dir>/admin-token" must
//     be what the server prints and writes;
//   - the README's list "three `fieldctl` commands to try (enroll, sync,
//     household list)" must be the printed commands, in order.
// The one flag added to the recipe is --metrics_listen=127.0.0.1:0, so that
// parallel tests do not fight over the metrics port (the README's 9464 is
// checked against the server's default instead).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace fieldsync::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The first ``` block of a Markdown text (without the fences); "" if none.
std::string FirstCodeBlock(const std::string& markdown) {
  const size_t open = markdown.find("```");
  if (open == std::string::npos) return "";
  const size_t body = markdown.find('\n', open);
  const size_t close = markdown.find("\n```", body);
  if (body == std::string::npos || close == std::string::npos) return "";
  return markdown.substr(body + 1, close - body);
}

// What the test takes from the Makefile: `VAR ?= value` defaults and the
// `run` target's recipe lines (continuations joined).
struct Makefile {
  std::map<std::string, std::string> defaults;
  std::vector<std::string> run_recipe;
};

Makefile ParseMakefile(const std::string& text) {
  Makefile makefile;
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  static const std::regex kDefault(R"(^([A-Z_]+)\s*\?=\s*(.*?)\s*$)");
  bool in_run = false;
  std::string pending;
  for (const std::string& line : lines) {
    std::smatch m;
    if (std::regex_match(line, m, kDefault)) makefile.defaults[m[1]] = m[2];
    if (absl::StartsWith(line, "run:")) {
      in_run = true;
      continue;
    }
    if (!in_run) continue;
    if (!absl::StartsWith(line, "\t")) {
      if (pending.empty()) {
        in_run = false;
        continue;
      }
    }
    std::string part(absl::StripAsciiWhitespace(line));
    if (absl::EndsWith(part, "\\")) {
      absl::StrAppend(&pending, part.substr(0, part.size() - 1), " ");
      continue;
    }
    makefile.run_recipe.push_back(pending + part);
    pending.clear();
  }
  return makefile;
}

// Expands $(VAR), then $(if COND,TEXT), as make does for the recipe.
std::string Expand(std::string text, const std::map<std::string, std::string>& vars) {
  static const std::regex kVar(R"(\$\(([A-Z_]+)\))");
  std::smatch m;
  while (std::regex_search(text, m, kVar)) {
    auto it = vars.find(m[1]);
    text = m.prefix().str() + (it == vars.end() ? "" : it->second) + m.suffix().str();
  }
  static const std::regex kIf(R"(\$\(if ([^,()]*),([^()]*)\))");
  while (std::regex_search(text, m, kIf)) {
    const bool set = !absl::StripAsciiWhitespace(m[1].str()).empty();
    text = m.prefix().str() + (set ? m[2].str() : "") + m.suffix().str();
  }
  return text;
}

// A child process whose stdout the test reads line by line.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& cwd) {
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      close(out[0]);
      close(out[1]);
      if (chdir(cwd.c_str()) != 0) _exit(126);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(out[1]);
    out_ = fdopen(out[0], "r");
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    if (out_ != nullptr) fclose(out_);
  }
  // The next line of stdout without its newline; false at the end.
  bool ReadLine(std::string* line) {
    if (out_ == nullptr) return false;
    char* buffer = nullptr;
    size_t size = 0;
    const ssize_t n = getline(&buffer, &size, out_);
    if (n >= 0) line->assign(buffer, n > 0 && buffer[n - 1] == '\n' ? n - 1 : n);
    free(buffer);
    return n >= 0;
  }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
};

struct ShellRun {
  int exit_code = -1;
  std::string out;
};

// Runs `command` with /bin/sh in `cwd`, stdout captured, stderr to the test's.
ShellRun Shell(const std::string& command, const std::string& cwd) {
  ShellRun run;
  const std::string full = absl::StrCat("cd '", cwd, "' && ", command);
  FILE* pipe = popen(full.c_str(), "r");
  if (pipe == nullptr) return run;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) run.out.append(buffer, n);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

class ReadmeFirstScreenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("readme_first_screen_", getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "home");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
};

TEST_F(ReadmeFirstScreenTest, MakeRunThenThePrintedCommandsWorkAsWritten) {
  const std::string source = SOURCE_DIR;
  const std::string readme = ReadFile(source + "/README.md");
  const std::string makefile_text = ReadFile(source + "/Makefile");
  ASSERT_FALSE(readme.empty()) << "no README.md in " << source;

  // The first screen: a code block whose server line is `make run`, with the
  // address and data directory it names.
  const std::string block = FirstCodeBlock(readme);
  std::string make_run_line;
  for (absl::string_view line : absl::StrSplit(block, '\n')) {
    if (absl::StartsWith(line, "make run")) make_run_line = std::string(line);
  }
  ASSERT_FALSE(make_run_line.empty()) << "README's first code block has no `make run`:\n"
                                      << block;
  const Makefile makefile = ParseMakefile(makefile_text);
  ASSERT_FALSE(makefile.run_recipe.empty()) << "the Makefile has no `run:` recipe";
  for (const char* var : {"LISTEN", "DATA_DIR", "DEMO"}) {
    ASSERT_TRUE(makefile.defaults.count(var)) << "the Makefile has no `" << var << " ?=` default";
  }
  EXPECT_TRUE(absl::StrContains(make_run_line, makefile.defaults.at("LISTEN")))
      << "README says `" << make_run_line << "`, the Makefile's LISTEN is "
      << makefile.defaults.at("LISTEN");
  EXPECT_TRUE(absl::StrContains(make_run_line, makefile.defaults.at("DATA_DIR")))
      << "README says `" << make_run_line << "`, the Makefile's DATA_DIR is "
      << makefile.defaults.at("DATA_DIR");
  ASSERT_FALSE(makefile.defaults.at("DEMO").empty())
      << "`make run` starts without a demo, but the README promises one";

  // The README's promise about what is printed: the demo's three commands.
  static const std::regex kThree(R"(three `fieldctl` commands to try \(([^)]*)\))");
  std::smatch promised_match;
  const std::string flat = absl::StrReplaceAll(readme, {{"\n  ", " "}, {"\n", " "}});
  ASSERT_TRUE(std::regex_search(flat, promised_match, kThree))
      << "README no longer says which three fieldctl commands the demo prints";
  std::vector<std::string> promised = absl::StrSplit(promised_match[1].str(), ", ");
  ASSERT_EQ(promised.size(), 3u) << promised_match[1];
  EXPECT_TRUE(absl::StrContains(readme, "first admin token: ..."));
  EXPECT_TRUE(absl::StrContains(readme, "<data_dir>/admin-token"));

  // Start it as the recipe does.
  const std::string data_dir = (dir_ / "data").string();
  std::map<std::string, std::string> vars = makefile.defaults;
  vars["LISTEN"] = "127.0.0.1:0";
  vars["DATA_DIR"] = data_dir;
  std::vector<std::string> argv;
  for (const std::string& raw : makefile.run_recipe) {
    std::string line = Expand(raw, vars);
    line = absl::StrReplaceAll(line, {{"./build/release/server/fieldsyncd", FIELDSYNCD_PATH},
                                      {"./build/release/clients/fieldctl/fieldctl", FIELDCTL_PATH}});
    if (absl::StartsWith(line, "mkdir -p ")) {
      std::filesystem::create_directories(line.substr(9));
      continue;
    }
    ASSERT_TRUE(absl::StartsWith(line, FIELDSYNCD_PATH))
        << "a `make run` recipe line the test does not know: " << raw;
    argv = absl::StrSplit(line, ' ', absl::SkipWhitespace());
  }
  ASSERT_FALSE(argv.empty()) << "the `run` recipe starts no fieldsyncd";
  argv.push_back("--metrics_listen=127.0.0.1:0");
  Child server(argv, source);

  // Its first screen, up to the listening line.
  std::string token, token_file, address;
  std::vector<std::string> commands;
  std::string screen, line;
  bool in_commands = false;
  while (server.ReadLine(&line)) {
    absl::StrAppend(&screen, line, "\n");
    if (absl::string_view rest = line; absl::ConsumePrefix(&rest, "first admin token: ")) {
      token = std::string(rest);
    }
    if (absl::string_view rest = line; absl::ConsumePrefix(&rest, "admin token in ")) {
      token_file = std::string(rest);
    }
    if (absl::StartsWith(line, "try, as cadre")) {
      in_commands = true;
      continue;
    }
    if (in_commands && absl::StartsWith(line, "  ")) {
      commands.push_back(std::string(absl::StripAsciiWhitespace(line)));
      continue;
    }
    in_commands = false;
    if (absl::string_view rest = line; absl::ConsumePrefix(&rest, "fieldsyncd listening on ")) {
      address = std::string(rest);
      break;
    }
  }
  ASSERT_FALSE(address.empty()) << "fieldsyncd never said it listens; it printed:\n" << screen;
  ASSERT_FALSE(token.empty()) << "no admin token printed:\n" << screen;
  EXPECT_EQ(token_file, data_dir + "/admin-token") << screen;
  EXPECT_EQ(std::string(absl::StripAsciiWhitespace(ReadFile(token_file))), token)
      << "the token file does not hold the printed token";
  ASSERT_EQ(commands.size(), 3u) << "want three commands to try; fieldsyncd printed:\n" << screen;

  // The printed commands, as a person pastes them, in a fresh directory
  // (they use ./var/...) and a fresh HOME (no fieldctl.toml of the machine).
  const std::string cwd = (dir_ / "home").string();
  for (size_t i = 0; i < commands.size(); ++i) {
    const std::string& command = commands[i];
    ASSERT_TRUE(absl::StartsWith(command, FIELDCTL_PATH))
        << "printed command " << i + 1 << " does not run the --demo_fieldctl of the recipe: "
        << command;
    // The README's word for it (e.g. "household list") is what the command does.
    EXPECT_TRUE(absl::StrContains(command, absl::StrCat(" ", promised[i])))
        << "README promises `" << promised[i] << "` as command " << i + 1 << ", fieldsyncd printed "
        << command;
    ShellRun run = Shell(absl::StrCat("HOME='", cwd, "' FIELDCTL_CONFIG=/nonexistent ", command),
                         cwd);
    EXPECT_EQ(run.exit_code, 0) << command << "\n" << run.out;
    EXPECT_FALSE(absl::StripAsciiWhitespace(run.out).empty())
        << command << " printed nothing";
  }
}

}  // namespace
}  // namespace fieldsync::testing
