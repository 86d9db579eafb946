// Command-line arguments of fieldctl: positional words and --options
// (`--name value` or `--name=value`; options may repeat, e.g. --photo), and
// the config file ~/.config/fieldsync/fieldctl.toml (key = "value" lines).
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace fieldsync::fieldctl {

class Args {
 public:
  // Parses argv[first..]; options named in `booleans` take no value.
  // INVALID_ARGUMENT for an option without its value.
  static absl::StatusOr<Args> Parse(const std::vector<std::string>& argv,
                                    const std::set<std::string>& booleans);

  const std::vector<std::string>& positional() const { return positional_; }
  bool Has(const std::string& name) const { return options_.count(name) > 0; }
  // The last value of --name; nullopt if absent.
  std::optional<std::string> Get(const std::string& name) const;
  std::string GetOr(const std::string& name, const std::string& fallback) const;
  std::vector<std::string> All(const std::string& name) const;
  // Options given that are not in `known` (for usage errors).
  std::vector<std::string> Unknown(const std::set<std::string>& known) const;

 private:
  std::vector<std::string> positional_;
  std::multimap<std::string, std::string> options_;
};

// key = "value" lines; '#' starts a comment; bare values allowed.
// INVALID_ARGUMENT naming the line for anything else.
absl::StatusOr<std::map<std::string, std::string>> ParseConfig(const std::string& text);

}  // namespace fieldsync::fieldctl
