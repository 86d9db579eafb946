#include "clients/fieldctl/args.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace fieldsync::fieldctl {

absl::StatusOr<Args> Args::Parse(const std::vector<std::string>& argv,
                                 const std::set<std::string>& booleans) {
  Args args;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& word = argv[i];
    if (word == "--") {
      for (++i; i < argv.size(); ++i) args.positional_.push_back(argv[i]);
      break;
    }
    if (word.size() > 2 && word.rfind("--", 0) == 0) {
      std::string name = word.substr(2);
      size_t eq = name.find('=');
      if (eq != std::string::npos) {
        args.options_.emplace(name.substr(0, eq), name.substr(eq + 1));
      } else if (booleans.count(name) > 0) {
        args.options_.emplace(name, "true");
      } else if (i + 1 < argv.size()) {
        args.options_.emplace(name, argv[++i]);
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
    } else if (word == "-h") {
      args.options_.emplace("help", "true");
    } else {
      args.positional_.push_back(word);
    }
  }
  return args;
}

std::optional<std::string> Args::Get(const std::string& name) const {
  auto range = options_.equal_range(name);
  if (range.first == range.second) return std::nullopt;
  return std::prev(range.second)->second;
}

std::string Args::GetOr(const std::string& name, const std::string& fallback) const {
  return Get(name).value_or(fallback);
}

std::vector<std::string> Args::All(const std::string& name) const {
  std::vector<std::string> out;
  auto range = options_.equal_range(name);
  for (auto it = range.first; it != range.second; ++it) out.push_back(it->second);
  return out;
}

std::vector<std::string> Args::Unknown(const std::set<std::string>& known) const {
  std::vector<std::string> out;
  for (const auto& [name, value] : options_) {
    if (known.count(name) == 0) out.push_back(name);
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> ParseConfig(const std::string& text) {
  std::map<std::string, std::string> out;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#' || line.front() == '[') continue;
    size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("config line ", number, ": want key = \"value\""));
    }
    std::string key(absl::StripAsciiWhitespace(line.substr(0, eq)));
    absl::string_view value = absl::StripAsciiWhitespace(line.substr(eq + 1));
    if (!value.empty() && value.front() == '"') {
      size_t close = value.find('"', 1);
      if (close == absl::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrCat("config line ", number, ": unclosed quote"));
      }
      value = value.substr(1, close - 1);
    } else {
      size_t hash = value.find('#');
      if (hash != absl::string_view::npos)
        value = absl::StripAsciiWhitespace(value.substr(0, hash));
    }
    out[key] = std::string(value);
  }
  return out;
}

}  // namespace fieldsync::fieldctl
