// The demo county of `make run` (fieldsyncd --demo=county): a real county of
// the Gansu tree with villages, units, cadres, links, households, a season of
// visits and a few open conflicts, made on the first start of an empty store.
//
// Everything goes through the served API of the running server, as the
// admin and as demo devices: AdminService (ImportAreas, UpsertUnit,
// UpsertUser, IssueEnrollmentCode, StartLink: the handlers that append
// through the engine's server-event entry) and SyncService (Enroll; Push of
// events signed by the demo devices' Ed25519 keys, through SyncEngine::Push).
// Nothing is written to the store directly, so the demo is data the domain
// accepted and indexed like any other (docs/operations.md, "Demo county").
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fieldsync::server {

struct DemoCountyOptions {
  // host:port of the running server (plaintext loopback).
  std::string target;
  // The first admin token of the store (the demo runs as the admin).
  std::string admin_token;
  // The areas CSV of the Gansu tree (code,parent,level,name; townships and up).
  std::string areas_csv_path = "deploy/gansu-admin-areas.csv";
  // The county's 6-digit code; it must be in the CSV with its townships.
  // Default 620122 (皋兰县, 4 townships).
  std::string county_code = "620122";
  // Generated villages per township (codes <township 9 digits>001...).
  int villages_per_township = 3;
  // Households registered per village.
  int households_per_village = 3;
  // Now, for visit dates and link start days.
  absl::Time now = absl::Now();
};

// What the demo made, for the lines fieldsyncd prints and for tests.
struct DemoSummary {
  std::string county_code;  // 12 digits
  std::string county_name;
  int townships = 0;
  int villages = 0;
  int units = 0;
  int cadres = 0;
  int links = 0;
  int households = 0;
  int visits = 0;
  int visits_without_fix = 0;
  int visits_far_from_home = 0;
  int cadres_short_of_quota = 0;
  int conflicts = 0;
  // A fresh enrollment code for `code_user`, a demo cadre with linked
  // households and no enrolled `fieldctl` yet (the demo's own device for
  // that user is a different one).
  std::string enrollment_code;
  std::string code_user;
  absl::Time code_expires_at;
  absl::Duration took;
};

// Loads the demo county into the server at options.target. Fails with the
// first call's status (the store then holds what was made until then).
absl::StatusOr<DemoSummary> LoadDemoCounty(const DemoCountyOptions& options);

// The lines fieldsyncd prints after loading: counts, the admin token and
// three fieldctl commands to try against `server` (host:port).
// `fieldctl` is the command as the user types it (a path or a name on PATH).
std::string DemoSummaryText(const DemoSummary& summary, const std::string& server,
                            const std::string& admin_token_file, const std::string& fieldctl);

}  // namespace fieldsync::server
