// intune_user_status.hpp: a header-only C++17 layer over intune_user_status.h.
//
// - ius::Client owns an ius_client (move-only; freed with ius_client_free when it goes away).
// - Every fallible call returns a [[nodiscard]] ius::Result<T>: a value, or an ius::Error with the
//   fields of the C error JSON. The wrapper throws nothing of its own (only std::bad_alloc can
//   escape, from copying strings).
// - Every string the library returns is copied into a std::string and freed at once with
//   ius_string_free.
// - One Client may be used from many threads at once (its calls are const), but must not be
//   destroyed or moved from while in use. A moved-from Client answers IUS_STATUS_NULL_ARGUMENT.
//   Client::interrupt() ends the calls in progress from any thread (IUS_STATUS_CANCELLED);
//   Client::metrics() returns its counters as JSON.
// - ius::Outbox owns an ius_outbox (the durable outbox, move-only); Outbox::interrupt() ends its
//   flush (and enqueues waiting for its file) from any thread.
// - Tokens may come from a C++ function (Client::create_with_token_source) or a C callback
//   (Client::create_with_token_callback); log messages may go to a C++ function
//   (ius::set_log_callback). Exceptions thrown by these functions are caught at the boundary.
//
//   auto client = ius::Client::create(R"({"baseUrl":"http://127.0.0.1:8080","accessToken":"t"})");
//   if (!client) { std::cerr << client.error().message << "\n"; return 1; }
//   auto updated = client.value().update("config-id", "status-id", R"({"devicesCount":3})");
//   if (!updated) std::cerr << updated.error().status_name() << ": " << updated.error().message;
#ifndef INTUNE_USER_STATUS_HPP
#define INTUNE_USER_STATUS_HPP

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "intune_user_status.h"

namespace ius {

/// A failed call: the fields of the C error JSON (see ius_update_user_status in the C header).
struct Error {
  /// The status the C call returned.
  ius_status status = IUS_STATUS_INTERNAL;
  /// A message for a log: what went wrong, naming the field or the HTTP status and ids.
  std::string message;
  /// The argument, property or setting at fault (`devicesCount`, `timeouts.readMs`, ...).
  std::optional<std::string> field;
  /// IUS_STATUS_STORAGE: the outbox file at fault.
  std::optional<std::string> path;
  /// The HTTP status Graph answered, when one arrived.
  std::optional<int> http_status;
  /// Graph's error code, e.g. `ResourceNotFound`: program against this, not the message.
  std::optional<std::string> code;
  /// The `request-id` Microsoft support asks for.
  std::optional<std::string> request_id;
  /// The `client-request-id` the library sent.
  std::optional<std::string> client_request_id;
  /// How long Graph asked the caller to wait (429/503), in seconds.
  std::optional<double> retry_after_seconds;
  /// Why retrying stopped before the retries ran out, e.g. a Retry-After past retry.maxDelayMs.
  std::optional<std::string> retry_stopped;
  /// Requests actually sent for the call, retries included (absent when nothing was sent).
  std::optional<int> attempts;
  /// IUS_STATUS_AUTH: the Microsoft Entra error code, e.g. `AADSTS7000215` (wrong secret).
  std::optional<std::string> aadsts;
  /// IUS_STATUS_AUTH: the OAuth error, e.g. `invalid_client` (the error JSON's `error`).
  std::optional<std::string> oauth_error;
  /// IUS_STATUS_AUTH: the token endpoint's `trace_id` Microsoft support asks for.
  std::optional<std::string> trace_id;
  /// IUS_STATUS_AUTH: the token endpoint's `correlation_id`.
  std::optional<std::string> correlation_id;
  /// The error JSON exactly as the library wrote it (empty if none was written).
  std::string json;

  /// The status's name: "INVALID_INPUT", "GRAPH", ...
  const char *status_name() const noexcept { return ius_status_name(status); }
};

/// A value or an Error. Check ok() (or the bool conversion) before value(); value() on an error
/// and error() on a value print a message and abort, since the wrapper throws nothing.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : inner_(std::in_place_index<0>, std::move(value)) {}       // NOLINT
  Result(Error error) : inner_(std::in_place_index<1>, std::move(error)) {}   // NOLINT

  /// True when the call succeeded.
  bool ok() const noexcept { return inner_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  /// The value; the call must have succeeded.
  T &value() & { return std::get<0>(checked(true)); }
  const T &value() const & { return std::get<0>(checked(true)); }
  // By value: a reference into a temporary Result would dangle once the full expression ends.
  T value() && { return std::get<0>(std::move(checked(true))); }

  /// The error; the call must have failed.
  const Error &error() const & { return std::get<1>(checked(false)); }
  // By value, as value() &&: `const Error &e = client.update(...).error();` must not dangle.
  Error error() && { return std::get<1>(std::move(checked(false))); }

 private:
  std::variant<T, Error> &checked(bool want_value) {
    require(want_value);
    return inner_;
  }
  const std::variant<T, Error> &checked(bool want_value) const {
    require(want_value);
    return inner_;
  }
  void require(bool want_value) const {
    if (ok() != want_value) {
      std::fprintf(stderr, "ius::Result::%s() called on %s\n", want_value ? "value" : "error",
                   want_value ? std::get<1>(inner_).message.c_str() : "a value");
      std::abort();
    }
  }
  std::variant<T, Error> inner_;
};

namespace detail {

struct StringFree {
  void operator()(char *s) const noexcept { ius_string_free(s); }
};
/// Owns a library string until it is copied.
using LibraryString = std::unique_ptr<char, StringFree>;

/// One key of an error JSON, read by the library (ius_error_json_get); nullopt when absent.
inline std::optional<std::string> error_value(const std::string &json, const char *key) {
  char *value = nullptr;
  if (ius_error_json_get(json.c_str(), key, &value) != IUS_STATUS_OK || !value) return std::nullopt;
  LibraryString owned(value);
  return std::string(owned.get());
}

/// Builds an Error from a failed call's status and error JSON (which it frees).
inline Error make_error(ius_status status, char *error_json) {
  LibraryString owned(error_json);
  Error error;
  error.status = status;
  if (owned) error.json = owned.get();
  owned.reset();
  auto text = [&](const char *key) { return error_value(error.json, key); };
  auto number = [&](const char *key) -> std::optional<double> {
    auto value = error_value(error.json, key);
    if (!value) return std::nullopt;
    return std::strtod(value->c_str(), nullptr);
  };
  error.message = text("message").value_or("");
  error.field = text("field");
  error.path = text("path");
  error.code = text("code");
  error.request_id = text("requestId");
  error.client_request_id = text("clientRequestId");
  error.aadsts = text("aadsts");
  error.oauth_error = text("error");
  error.trace_id = text("traceId");
  error.correlation_id = text("correlationId");
  error.retry_stopped = text("retryStopped");
  if (auto value = number("httpStatus")) error.http_status = static_cast<int>(*value);
  error.retry_after_seconds = number("retryAfterSeconds");
  if (auto value = number("attempts")) error.attempts = static_cast<int>(*value);
  if (error.message.empty()) error.message = ius_status_name(status);
  return error;
}

/// An argument C cannot carry (a NUL byte would cut the string short).
inline std::optional<Error> check_argument(const std::string &value, const char *name) {
  if (value.find('\0') == std::string::npos) return std::nullopt;
  Error error;
  error.status = IUS_STATUS_INVALID_INPUT;
  error.field = name;
  error.message = std::string(name) + " contains a NUL byte";
  return error;
}

}  // namespace detail

/// A bearer token (without the `Bearer ` prefix) and how long it stays valid from now.
struct Token {
  std::string value;
  /// 0 or less: not cached, asked for again before every request.
  std::int64_t expires_in_seconds = 0;
};

/// Supplies tokens for Client::create_with_token_source: a Token, or a message saying why there
/// is none (the update then fails with IUS_STATUS_AUTH and that message). Called as
/// ius_token_callback is: on a thread making an update, one call at a time per client; it must not
/// call into the client it serves. An exception it throws becomes IUS_STATUS_AUTH.
using TokenSource = std::function<std::variant<Token, std::string>()>;

namespace detail {

/// The TokenSource behind a client, and a token too long for the first buffer, kept for the
/// library's second call (so the source is asked once).
struct TokenState {
  TokenSource source;
  std::string pending;
  std::int64_t pending_expires_in = 0;
};

inline void copy_message(char *buffer, std::size_t len, const std::string &message) noexcept {
  if (len == 0) return;
  std::size_t n = message.size() < len - 1 ? message.size() : len - 1;
  std::memcpy(buffer, message.data(), n);
  buffer[n] = '\0';
}

/// The ius_token_callback that calls a TokenState's source; no exception leaves it.
inline std::int32_t call_token_source(void *user_data, char *buffer, std::size_t len,
                                      std::int64_t *out_expires_in) noexcept {
  auto *state = static_cast<TokenState *>(user_data);
  try {
    if (state->pending.empty()) {
      auto outcome = state->source();
      if (auto *message = std::get_if<std::string>(&outcome)) {
        copy_message(buffer, len, message->empty() ? "the token source gave no token" : *message);
        return -1;
      }
      Token &token = std::get<Token>(outcome);
      state->pending = std::move(token.value);
      state->pending_expires_in = token.expires_in_seconds;
    }
    std::size_t needed = state->pending.size() + 1;
    if (needed > len) {
      if (needed > 16385) {
        state->pending.assign(state->pending.size(), '\0');
        state->pending.clear();
        copy_message(buffer, len, "the token source gave a token longer than 16384 bytes");
        return -1;
      }
      return static_cast<std::int32_t>(needed);  // the library calls again with this much room
    }
    std::memcpy(buffer, state->pending.c_str(), needed);
    *out_expires_in = state->pending_expires_in;
    state->pending.assign(state->pending.size(), '\0');  // wipe before letting go
    state->pending.clear();
    return 0;
  } catch (...) {
    state->pending.clear();
    copy_message(buffer, len, "the C++ token source threw an exception");
    return -1;
  }
}

}  // namespace detail

/// A Graph client (see ius_client_new for config_json). Move-only; thread-safe to share.
class Client {
 public:
  /// The updated object as JSON, or nullopt when Graph answered 204 No Content.
  using Response = std::optional<std::string>;

  /// Creates a client whose tokens come from `source` (see ius_client_new_with_token_callback
  /// for config_json, which then holds no credentials, and for when the source is called). The
  /// Client owns the source and keeps it alive as long as the C client; an outbox opened with
  /// get() keeps calling it, so free such an outbox before the Client is destroyed.
  static Result<Client> create_with_token_source(const std::string &config_json,
                                                 TokenSource source) {
    if (auto bad = detail::check_argument(config_json, "config_json")) return *bad;
    auto state = std::make_unique<detail::TokenState>();
    state->source = std::move(source);
    ius_client *raw = nullptr;
    char *error = nullptr;
    ius_status status = ius_client_new_with_token_callback(
        config_json.c_str(), state->source ? &detail::call_token_source : nullptr, state.get(),
        &raw, &error);
    if (status != IUS_STATUS_OK) return detail::make_error(status, error);
    Client client(raw);
    client.tokens_ = std::move(state);
    return client;
  }

  /// Creates a client whose tokens come from a C `callback` (ius_client_new_with_token_callback);
  /// `callback` and `user_data` stay in use until the Client and every outbox opened with get()
  /// are freed, so `user_data` must outlive the last of them.
  static Result<Client> create_with_token_callback(const std::string &config_json,
                                                   ius_token_callback callback, void *user_data) {
    if (auto bad = detail::check_argument(config_json, "config_json")) return *bad;
    ius_client *raw = nullptr;
    char *error = nullptr;
    ius_status status =
        ius_client_new_with_token_callback(config_json.c_str(), callback, user_data, &raw, &error);
    if (status != IUS_STATUS_OK) return detail::make_error(status, error);
    return Client(raw);
  }

  /// Takes ownership of a client made with the C API (e.g. by a constructor this wrapper does
  /// not cover); it is freed with ius_client_free when the Client goes away.
  static Client adopt(ius_client *raw) noexcept { return Client(raw); }

  /// Creates a client from config_json (the keys of ius_client_new).
  static Result<Client> create(const std::string &config_json) {
    if (auto bad = detail::check_argument(config_json, "config_json")) return *bad;
    ius_client *raw = nullptr;
    char *error = nullptr;
    ius_status status = ius_client_new(config_json.c_str(), &raw, &error);
    if (status != IUS_STATUS_OK) return detail::make_error(status, error);
    return Client(raw);
  }

  Client(Client &&) noexcept = default;
  Client &operator=(Client &&) noexcept = default;
  Client(const Client &) = delete;
  Client &operator=(const Client &) = delete;
  ~Client() = default;

  /// Updates /deviceConfigurations/{cfg_id}/userStatuses/{status_id} with patch_json.
  Result<Response> update(const std::string &cfg_id, const std::string &status_id,
                          const std::string &patch_json) const {
    for (auto [value, name] : {std::pair{&cfg_id, "device_configuration_id"},
                               std::pair{&status_id, "user_status_id"},
                               std::pair{&patch_json, "patch_json"}}) {
      if (auto bad = detail::check_argument(*value, name)) return *bad;
    }
    char *response = nullptr;
    char *error = nullptr;
    ius_status status = ius_update_user_status(handle_.get(), cfg_id.c_str(), status_id.c_str(),
                                               patch_json.c_str(), &response, &error);
    return finish(status, response, error);
  }

  /// Updates the user status named by target_json (any documented path) with patch_json.
  Result<Response> update_at(const std::string &target_json, const std::string &patch_json) const {
    if (auto bad = detail::check_argument(target_json, "target_json")) return *bad;
    if (auto bad = detail::check_argument(patch_json, "patch_json")) return *bad;
    char *response = nullptr;
    char *error = nullptr;
    ius_status status = ius_update_user_status_at(handle_.get(), target_json.c_str(),
                                                  patch_json.c_str(), &response, &error);
    return finish(status, response, error);
  }

  /// What update_many wrote: the results array (one element per item, in the items' order) and
  /// whether any item failed (IUS_STATUS_PARTIAL).
  struct BulkResults {
    std::string json;
    bool partial = false;
  };

  /// Updates many user statuses through $batch (see ius_update_user_statuses for items_json and
  /// the results). A value when the results were written (every item OK, or partial); an Error
  /// when nothing was sent.
  Result<BulkResults> update_many(const std::string &items_json) const {
    if (auto bad = detail::check_argument(items_json, "items_json")) return *bad;
    char *results = nullptr;
    char *error = nullptr;
    ius_status status = ius_update_user_statuses(handle_.get(), items_json.c_str(), &results, &error);
    detail::LibraryString owned(results);
    if (status != IUS_STATUS_OK && status != IUS_STATUS_PARTIAL) return detail::make_error(status, error);
    detail::LibraryString(error).reset();
    BulkResults out;
    if (owned) out.json = owned.get();
    out.partial = status == IUS_STATUS_PARTIAL;
    return out;
  }

  /// Reads the user status named by target_json: the entity as JSON.
  Result<std::string> get_status(const std::string &target_json) const {
    if (auto bad = detail::check_argument(target_json, "target_json")) return *bad;
    char *response = nullptr;
    char *error = nullptr;
    ius_status status = ius_get_user_status(handle_.get(), target_json.c_str(), &response, &error);
    return text(status, response, error);
  }

  /// Every user status of collection_json, every page: a JSON array (see ius_list_user_statuses
  /// for options_json).
  Result<std::string> list(const std::string &collection_json,
                           const std::optional<std::string> &options_json = std::nullopt) const {
    if (auto bad = detail::check_argument(collection_json, "collection_json")) return *bad;
    if (options_json) {
      if (auto bad = detail::check_argument(*options_json, "options_json")) return *bad;
    }
    char *response = nullptr;
    char *error = nullptr;
    ius_status status = ius_list_user_statuses(handle_.get(), collection_json.c_str(),
                                               options_json ? options_json->c_str() : nullptr,
                                               &response, &error);
    return text(status, response, error);
  }

  /// Creates a user status in collection_json: the created entity as JSON.
  Result<std::string> create(const std::string &collection_json, const std::string &entity_json) const {
    if (auto bad = detail::check_argument(collection_json, "collection_json")) return *bad;
    if (auto bad = detail::check_argument(entity_json, "entity_json")) return *bad;
    char *response = nullptr;
    char *error = nullptr;
    ius_status status = ius_create_user_status(handle_.get(), collection_json.c_str(),
                                               entity_json.c_str(), &response, &error);
    return text(status, response, error);
  }

  /// Deletes the user status named by target_json.
  Result<std::monostate> remove(const std::string &target_json) const {
    if (auto bad = detail::check_argument(target_json, "target_json")) return *bad;
    char *error = nullptr;
    ius_status status = ius_delete_user_status(handle_.get(), target_json.c_str(), &error);
    if (status != IUS_STATUS_OK) return detail::make_error(status, error);
    return std::monostate{};
  }

  /// Ends every call in progress on this client, from any thread (ius_client_interrupt): each
  /// returns an Error with status IUS_STATUS_CANCELLED (update_many: the unfinished items, the
  /// call partial). Calls started afterwards are not affected. A moved-from Client does nothing.
  void interrupt() const noexcept { ius_client_interrupt(handle_.get()); }

  /// The client's metrics JSON (ius_client_metrics): counters since the client was made, shared
  /// by its outboxes; the header documents each key. Safe from any thread while others call.
  Result<std::string> metrics() const {
    char *json = nullptr;
    char *error = nullptr;
    ius_status status = ius_client_metrics(handle_.get(), &json, &error);
    return text(status, json, error);
  }

  /// The C handle, for calls the wrapper does not cover; still owned by this Client.
  ius_client *get() const noexcept { return handle_.get(); }

 private:
  struct Deleter {
    void operator()(ius_client *client) const noexcept { ius_client_free(client); }
  };
  explicit Client(ius_client *raw) : handle_(raw) {}

  static Result<Response> finish(ius_status status, char *response, char *error) {
    if (status != IUS_STATUS_OK) return detail::make_error(status, error);
    detail::LibraryString owned(response);
    if (!owned) return Response();
    return Response(std::string(owned.get()));
  }

  static Result<std::string> text(ius_status status, char *response, char *error) {
    detail::LibraryString owned(response);
    if (status != IUS_STATUS_OK) return detail::make_error(status, error);
    return std::string(owned ? owned.get() : "");
  }

  // Declared before handle_, so destroyed after it: the C client may call the source until
  // ius_client_free returns. The source dies with this Client, so an outbox opened with get()
  // (ius_outbox_open), which keeps using the callback, must be freed before the Client goes.
  std::unique_ptr<detail::TokenState> tokens_;
  std::unique_ptr<ius_client, Deleter> handle_;
};

/// A durable outbox of status reports in an SQLite file (see ius_outbox_open). Move-only;
/// thread-safe to share (its calls are const); freed with ius_outbox_free when it goes away (the
/// file stays). It sends through its own copy of the client, so it may outlive the Client (but
/// not a token source the Client owns: see Client::create_with_token_source).
class Outbox {
 public:
  /// Opens (or creates) the outbox at `path` (UTF-8) for `client`; options_json as for
  /// ius_outbox_open (nullopt: the defaults).
  static Result<Outbox> open(const Client &client, const std::string &path,
                             const std::optional<std::string> &options_json = std::nullopt) {
    if (auto bad = detail::check_argument(path, "path")) return *bad;
    if (options_json) {
      if (auto bad = detail::check_argument(*options_json, "options_json")) return *bad;
    }
    ius_outbox *raw = nullptr;
    char *error = nullptr;
    ius_status status = ius_outbox_open(client.get(), path.c_str(),
                                        options_json ? options_json->c_str() : nullptr, &raw, &error);
    if (status != IUS_STATUS_OK) return detail::make_error(status, error);
    return Outbox(raw);
  }

  Outbox(Outbox &&) noexcept = default;
  Outbox &operator=(Outbox &&) noexcept = default;
  Outbox(const Outbox &) = delete;
  Outbox &operator=(const Outbox &) = delete;
  ~Outbox() = default;

  /// Stores patch_json for target_json durably (ius_outbox_enqueue).
  Result<std::monostate> enqueue(const std::string &target_json, const std::string &patch_json) const {
    if (auto bad = detail::check_argument(target_json, "target_json")) return *bad;
    if (auto bad = detail::check_argument(patch_json, "patch_json")) return *bad;
    char *error = nullptr;
    // The call first: a function's arguments are evaluated in no set order.
    ius_status status =
        ius_outbox_enqueue(handle_.get(), target_json.c_str(), patch_json.c_str(), &error);
    return done(status, error);
  }

  /// Stores every item of items_json in one transaction, all or none (ius_outbox_enqueue_many).
  Result<std::monostate> enqueue_many(const std::string &items_json) const {
    if (auto bad = detail::check_argument(items_json, "items_json")) return *bad;
    char *error = nullptr;
    ius_status status = ius_outbox_enqueue_many(handle_.get(), items_json.c_str(), &error);
    return done(status, error);
  }

  /// What flush wrote: the report JSON and, when the flush returned a status other than OK with
  /// its report (as ius_outbox_flush does), that status's Error: IUS_STATUS_CANCELLED (an
  /// interrupt ended it; the report says what was done), IUS_STATUS_AUTH (no token; the report
  /// says stoppedBy "auth" or "offline", what is pending and when the next attempt is, the hold
  /// included), or any other status once requests went out (the report's "sent" > 0, e.g.
  /// IUS_STATUS_STORAGE recording their outcomes: those reports stay pending), and
  /// IUS_STATUS_STORAGE with stoppedBy "storage" when the file kept a request back (even the
  /// first: "sent" 0).
  struct FlushReport {
    std::string json;
    std::optional<Error> stopped;
  };

  /// Sends what is due and records each outcome (ius_outbox_flush). A value whenever the C
  /// function wrote a report (IUS_STATUS_OK, IUS_STATUS_CANCELLED, IUS_STATUS_AUTH, or STORAGE
  /// and others once requests went out: check `stopped`); an Error when the flush could not run
  /// (no report).
  Result<FlushReport> flush() const {
    char *report = nullptr;
    char *error = nullptr;
    ius_status status = ius_outbox_flush(handle_.get(), &report, &error);
    detail::LibraryString owned(report);
    if (!owned && status != IUS_STATUS_OK) return detail::make_error(status, error);
    FlushReport out;
    if (owned) out.json = owned.get();
    if (status != IUS_STATUS_OK) out.stopped = detail::make_error(status, error);
    return out;
  }

  /// The outbox's figures as JSON (ius_outbox_stats).
  Result<std::string> stats() const { return text(&ius_outbox_stats); }

  /// Removes the failed list from the file and returns it as JSON (ius_outbox_take_failed).
  Result<std::string> take_failed() const { return text(&ius_outbox_take_failed); }

  /// Ends the outbox-wide hold a stopped flush left (stats()'s heldUntil), so the next flush()
  /// sends what is due at once (ius_outbox_clear_hold). Once the cause is fixed, not to get
  /// round throttling. True when a hold was in force and is now ended, false when none was.
  Result<bool> clear_hold() const {
    char *error = nullptr;
    int cleared = 0;
    ius_status status = ius_outbox_clear_hold(handle_.get(), &cleared, &error);
    if (status != IUS_STATUS_OK) return detail::make_error(status, error);
    return cleared != 0;
  }

  /// Ends the flush in progress on this outbox, and every other call on it waiting for its file
  /// (enqueue, take_failed, stats), from any thread (ius_outbox_interrupt): flush() returns its
  /// report with `stopped` set (IUS_STATUS_CANCELLED), the others an Error with status IUS_STATUS_CANCELLED. Calls started afterwards are not affected. A
  /// moved-from Outbox does nothing.
  void interrupt() const noexcept { ius_outbox_interrupt(handle_.get()); }

  /// The C handle, for calls the wrapper does not cover; still owned by this Outbox.
  ius_outbox *get() const noexcept { return handle_.get(); }

 private:
  struct Deleter {
    void operator()(ius_outbox *outbox) const noexcept { ius_outbox_free(outbox); }
  };
  explicit Outbox(ius_outbox *raw) : handle_(raw) {}

  static Result<std::monostate> done(ius_status status, char *error) {
    if (status != IUS_STATUS_OK) return detail::make_error(status, error);
    return std::monostate{};
  }

  Result<std::string> text(ius_status (*call)(ius_outbox *, char **, char **)) const {
    char *out = nullptr;
    char *error = nullptr;
    ius_status status = call(handle_.get(), &out, &error);
    detail::LibraryString owned(out);
    if (status != IUS_STATUS_OK) return detail::make_error(status, error);
    return std::string(owned ? owned.get() : "");
  }

  std::unique_ptr<ius_outbox, Deleter> handle_;
};

/// Receives the library's log messages (see ius_set_log_callback): on any thread, possibly on
/// several at once; it must not call into this library. An exception it throws is swallowed.
using LogSink = std::function<void(ius_log_level level, const char *message)>;

namespace detail {

inline void call_log_sink(void *user_data, ius_log_level level, const char *message) noexcept {
  try {
    (*static_cast<const LogSink *>(user_data))(level, message);
  } catch (...) {
  }
}

}  // namespace detail

/// Sends the library's log messages up to `max_level` to `sink`, replacing the sink (or C
/// callback) set before; an empty sink turns logging off. Returns ius_set_log_callback's status;
/// on failure the previous sink stays.
inline ius_status set_log_callback(LogSink sink, ius_log_level max_level) {
  static std::mutex guard;
  static std::unique_ptr<LogSink> current;
  std::lock_guard<std::mutex> lock(guard);
  std::unique_ptr<LogSink> fresh;
  if (sink) fresh = std::make_unique<LogSink>(std::move(sink));
  ius_status status =
      ius_set_log_callback(fresh ? &detail::call_log_sink : nullptr, fresh.get(), max_level);
  // Once ius_set_log_callback returns, the old sink is not running and is never called again.
  if (status == IUS_STATUS_OK) current.swap(fresh);
  return status;
}

/// The library version, e.g. "0.1.0".
inline std::string version() { return ius_version(); }

}  // namespace ius

#endif  // INTUNE_USER_STATUS_HPP
