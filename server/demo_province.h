// The demo province (fieldsyncd --demo=province): the seed's scale on the
// real Gansu tree, made on the first start of an empty store.
//
// From the areas CSV (province, cities, counties, townships; real codes) it
// takes the first `counties` counties by code that have townships (75: the
// seed's 58 national + 17 provincial poor counties), generates `villages`
// villages under their townships (12-digit codes <township 9 digits>001...,
// spread evenly), and loads, through the served API like the county demo
// (server/demo.h):
//   - units: per county, one unit per 4 of its villages, each linking its
//     villages (LINK_ROLE_VILLAGE_UNIT);
//   - households: `households` spread evenly over the villages, registered
//     by county-staff tablets (scopes of several counties each);
//   - cadres of those units, each linked to `households_per_cadre` households
//     of one village (every household is linked), with ranks by the seed's
//     quotas: a department-rank cadre has at least 3 households, a
//     county-rank cadre at least 2, any other at least 1;
//   - a season of visits at a smaller scale: `visiting_cadres` cadres spread
//     over the province record 4 visits to each of their households in the
//     last 100 days (every fifth of them only 2: short of the yearly quota).
// The admin's token is one rate-limit bucket (limits.device_requests_per_
// second); the loader enrolls `loaders` admin devices of its own
// ("demo-loader-NN") to spread the hundreds of thousands of admin calls over
// parallel workers, and revokes them at the end. Enrollments are limited per
// peer (auth.enroll_per_peer_per_minute): past the burst every device costs
// a wait, so the device counts stay small.
//
// Progress lines go to `progress` (fieldsyncd prints them on stdout).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fieldsync::server {

struct DemoProvinceOptions {
  // host:port of the running server (plaintext loopback).
  std::string target;
  // The first admin token of the store.
  std::string admin_token;
  // The areas CSV of the Gansu tree (code,parent,level,name).
  std::string areas_csv_path = "deploy/gansu-admin-areas.csv";
  // The seed's scale; a smaller one for tests (--demo_province_size).
  int counties = 75;
  int villages = 6220;
  int households = 400000;
  int households_per_cadre = 8;
  // 0 = chosen from the size (see the file comment).
  int visiting_cadres = 0;
  int loaders = 0;
  int tablets = 0;
  // Parallel workers (one gRPC connection each).
  int workers = 8;
  absl::Time now = absl::Now();
  // Called with each progress line (no newline); may be empty.
  std::function<void(const std::string&)> progress;
};

// Parses "COUNTIES/VILLAGES/HOUSEHOLDS" (e.g. "75/6220/400000") into
// `options`; INVALID_ARGUMENT naming what is wrong.
absl::Status ParseDemoProvinceSize(const std::string& text, DemoProvinceOptions* options);

struct DemoProvinceSummary {
  int counties = 0;
  int townships = 0;
  int villages = 0;
  int units = 0;
  int cadres = 0;
  int cadres_by_rank[3] = {0, 0, 0};  // department, county, other
  int links = 0;
  int households = 0;
  int visits = 0;
  int visiting_cadres = 0;
  int cadres_short_of_quota = 0;
  int devices = 0;  // enrolled by the loader (tablets, cadres' phones, loaders)
  absl::Duration took;
};

// Loads the demo province into the server at options.target. Fails with
// the first failing call's status (the store then holds what was made).
absl::StatusOr<DemoProvinceSummary> LoadDemoProvince(const DemoProvinceOptions& options);

// The lines fieldsyncd prints after loading.
std::string DemoProvinceSummaryText(const DemoProvinceSummary& summary,
                                    const std::string& admin_token_file);

}  // namespace fieldsync::server
