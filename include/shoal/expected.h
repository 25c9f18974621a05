// Public result type: a value or an error, like C++23's std::expected, written out so that the
// public headers compile as C++20 and with toolchains whose library lacks <expected>.
#pragma once

#include <cassert>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

namespace shoal {

/// The error side of an Expected, as Unexpected: `return Unexpected(err);`.
template <typename E>
class Unexpected {
 public:
  explicit Unexpected(E error) : error_(std::move(error)) {}
  const E& error() const& { return error_; }
  E& error() & { return error_; }
  E&& error() && { return std::move(error_); }

 private:
  E error_;
};

template <typename E>
Unexpected(E) -> Unexpected<E>;

/// A value of type T, or an error of type E. Check with `if (r)` / `r.has_value()`, then read
/// `*r` / `r->` / `r.value()`, or `r.error()`. Reading the side that is not there is a bug
/// (asserts in debug builds), as with std::expected.
template <typename T, typename E>
class BasicExpected {
 public:
  using value_type = T;
  using error_type = E;

  BasicExpected()
    requires std::is_default_constructible_v<T>
      : v_(std::in_place_index<0>) {}
  template <typename U = T>
    requires(std::is_constructible_v<T, U &&> && !std::is_same_v<std::remove_cvref_t<U>, BasicExpected> &&
             !std::is_same_v<std::remove_cvref_t<U>, Unexpected<E>>)
  BasicExpected(U&& value) : v_(std::in_place_index<0>, std::forward<U>(value)) {}
  template <typename G>
    requires std::is_constructible_v<E, const G&>
  BasicExpected(const Unexpected<G>& u) : v_(std::in_place_index<1>, u.error()) {}
  template <typename G>
    requires std::is_constructible_v<E, G &&>
  BasicExpected(Unexpected<G>&& u) : v_(std::in_place_index<1>, std::move(u).error()) {}

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { return checked(); }
  const T& value() const& { return const_cast<BasicExpected*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }
  T& operator*() & { return checked(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(checked()); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &value(); }
  template <typename U>
  T value_or(U&& other) const& {
    return has_value() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(other));
  }

  const E& error() const& {
    assert(!has_value() && "error() of an Expected that holds a value");
    return std::get<1>(v_);
  }
  E& error() & {
    assert(!has_value() && "error() of an Expected that holds a value");
    return std::get<1>(v_);
  }

 private:
  T& checked() {
    assert(has_value() && "value of an Expected that holds an error");
    return std::get<0>(v_);
  }
  std::variant<T, E> v_;
};

/// Success without a value, or an error.
template <typename E>
class BasicExpected<void, E> {
 public:
  using value_type = void;
  using error_type = E;

  BasicExpected() noexcept {}  // user-provided: `return {};` must not zero the error's storage
  template <typename G>
    requires std::is_constructible_v<E, const G&>
  BasicExpected(const Unexpected<G>& u) : error_(std::in_place, u.error()) {}
  template <typename G>
    requires std::is_constructible_v<E, G &&>
  BasicExpected(Unexpected<G>&& u) : error_(std::in_place, std::move(u).error()) {}

  bool has_value() const { return !error_.has_value(); }
  explicit operator bool() const { return has_value(); }
  void value() const { assert(has_value() && "value of an Expected that holds an error"); }
  void operator*() const { value(); }

  const E& error() const& {
    assert(!has_value() && "error() of an Expected that holds a value");
    return *error_;
  }
  E& error() & {
    assert(!has_value() && "error() of an Expected that holds a value");
    return *error_;
  }

 private:
  std::optional<E> error_;  ///< success constructs no E
};

}  // namespace shoal
