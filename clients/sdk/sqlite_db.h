// SqliteDb: the thin layer of the client SDK over SQLite. Opens a database
// file in WAL mode with synchronous=FULL (a committed transaction survives a
// power cut), runs statements and scoped transactions, and turns every SQLite
// error into an absl::Status (the one border between SQLite and absl).
//
// Not thread-safe: one SqliteDb per thread (the connection is opened with
// SQLITE_OPEN_NOMUTEX). Several processes may open the same file: a
// transaction takes the write lock at BEGIN IMMEDIATE and waits up to
// `busy_timeout_ms` for it.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fieldsync::client {

class SqliteDb;

// A prepared statement; borrowed from the SqliteDb that made it, which must
// outlive it. Bind indexes are 1-based as in SQLite; column indexes 0-based.
class Statement {
 public:
  Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) {
    other.stmt_ = nullptr;
  }
  Statement& operator=(Statement&&) = delete;
  ~Statement();

  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, absl::string_view text);       // TEXT
  Statement& BindBlob(int index, absl::string_view bytes);  // BLOB
  Statement& BindNull(int index);

  // Runs one step: true when a row is ready, false when done. A bind error
  // shows here.
  [[nodiscard]] absl::StatusOr<bool> Step();
  // Steps to the end (for statements that return no rows).
  [[nodiscard]] absl::Status Run();
  // Makes the statement ready to bind and run again.
  void Reset();

  int64_t Int(int column) const;
  std::string Text(int column) const;  // TEXT or BLOB bytes; "" for NULL.
  bool IsNull(int column) const;

 private:
  friend class SqliteDb;
  Statement(SqliteDb* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  SqliteDb* db_;
  sqlite3_stmt* stmt_;
  int bind_error_ = SQLITE_OK;
};

class SqliteDb {
 public:
  // Opens (creating if missing, mode 0600) the database at `path`.
  // INTERNAL with SQLite's message when it cannot be opened or put in WAL.
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path,
                                                        int busy_timeout_ms = 10000);
  ~SqliteDb();

  // Runs one or more statements without results.
  [[nodiscard]] absl::Status Exec(absl::string_view sql);
  [[nodiscard]] absl::StatusOr<Statement> Prepare(absl::string_view sql);

  // An error status for the last SQLite failure, naming `what`.
  absl::Status Error(absl::string_view what) const;

  // BEGIN IMMEDIATE ... COMMIT; the destructor rolls back what was not
  // committed, so an early return never leaves half a change.
  class Transaction {
   public:
    ~Transaction();
    [[nodiscard]] absl::Status Commit();

   private:
    friend class SqliteDb;
    explicit Transaction(SqliteDb* db) : db_(db) {}
    SqliteDb* db_;
    bool open_ = true;
  };
  [[nodiscard]] absl::StatusOr<std::unique_ptr<Transaction>> Begin();

  sqlite3* handle() { return db_; }

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

}  // namespace fieldsync::client
