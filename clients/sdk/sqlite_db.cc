#include "clients/sdk/sqlite_db.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"

namespace fieldsync::client {

Statement::~Statement() {
  if (stmt_ != nullptr) sqlite3_finalize(stmt_);
}

Statement& Statement::Bind(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK) bind_error_ = rc;
  return *this;
}

Statement& Statement::Bind(int index, absl::string_view text) {
  int rc =
      sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) bind_error_ = rc;
  return *this;
}

Statement& Statement::BindBlob(int index, absl::string_view bytes) {
  // An empty blob must still be a blob, not NULL: SQLite binds NULL for a
  // null pointer, so point at a static byte.
  static const char kEmpty = 0;
  int rc = sqlite3_bind_blob(stmt_, index, bytes.empty() ? &kEmpty : bytes.data(),
                             static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) bind_error_ = rc;
  return *this;
}

Statement& Statement::BindNull(int index) {
  int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK) bind_error_ = rc;
  return *this;
}

absl::StatusOr<bool> Statement::Step() {
  if (bind_error_ != SQLITE_OK) {
    return absl::InternalError(absl::StrCat("sqlite bind: ", sqlite3_errstr(bind_error_)));
  }
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->Error(sqlite3_sql(stmt_));
}

absl::Status Statement::Run() {
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_error_ = SQLITE_OK;
}

int64_t Statement::Int(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string Statement::Text(int column) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  int size = sqlite3_column_bytes(stmt_, column);
  if (data == nullptr) return "";
  return std::string(static_cast<const char*>(data), static_cast<size_t>(size));
}

bool Statement::IsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

absl::StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path,
                                                         int busy_timeout_ms) {
  sqlite3* handle = nullptr;
  // The file holds the device's secret key: only its owner may read it.
  mode_t old_mask = umask(077);
  int rc =
      sqlite3_open_v2(path.c_str(), &handle,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  umask(old_mask);
  if (rc != SQLITE_OK) {
    std::string message = handle != nullptr ? sqlite3_errmsg(handle) : sqlite3_errstr(rc);
    sqlite3_close(handle);
    return absl::InternalError(absl::StrCat("cannot open local database ", path, ": ", message));
  }
  std::unique_ptr<SqliteDb> db(new SqliteDb(handle));
  sqlite3_busy_timeout(handle, busy_timeout_ms);
  // WAL: readers never block the writer; synchronous=FULL: a commit is on
  // disk (WAL fsynced) before COMMIT returns, so an acknowledged recording
  // survives a kill or a power cut.
  absl::Status status =
      db->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
  if (!status.ok()) return status;
  return db;
}

SqliteDb::~SqliteDb() { sqlite3_close(db_); }

absl::Status SqliteDb::Exec(absl::string_view sql) {
  std::string copy(sql);
  char* message = nullptr;
  int rc = sqlite3_exec(db_, copy.c_str(), nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    absl::Status status = absl::InternalError(
        absl::StrCat("local database: ", message != nullptr ? message : sqlite3_errstr(rc)));
    sqlite3_free(message);
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
      return absl::UnavailableError(status.message());
    }
    return status;
  }
  return absl::OkStatus();
}

absl::StatusOr<Statement> SqliteDb::Prepare(absl::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return Error(sql);
  return Statement(this, stmt);
}

absl::Status SqliteDb::Error(absl::string_view what) const {
  int rc = sqlite3_errcode(db_);
  std::string message = absl::StrCat("local database: ", sqlite3_errmsg(db_), " (", what, ")");
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) return absl::UnavailableError(message);
  if (rc == SQLITE_FULL) return absl::ResourceExhaustedError(message);
  if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) return absl::DataLossError(message);
  return absl::InternalError(message);
}

absl::StatusOr<std::unique_ptr<SqliteDb::Transaction>> SqliteDb::Begin() {
  absl::Status status = Exec("BEGIN IMMEDIATE");
  if (!status.ok()) return status;
  return std::unique_ptr<Transaction>(new Transaction(this));
}

SqliteDb::Transaction::~Transaction() {
  if (open_) {
    // Rolling back what an early return left: its failure leaves nothing
    // committed either, so it is ignored on purpose.
    (void)db_->Exec("ROLLBACK");
  }
}

absl::Status SqliteDb::Transaction::Commit() {
  open_ = false;
  absl::Status status = db_->Exec("COMMIT");
  if (!status.ok()) (void)db_->Exec("ROLLBACK");  // Nothing is half-written either way.
  return status;
}

}  // namespace fieldsync::client
