// ORPC messages in flight: a request or response either as built (handed over as is between
// apartments of one process) or as received bytes (from a transport).
#pragma once

#include <cstring>
#include <memory>
#include <new>
#include <string_view>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>

#include <ferry/error.h>

#include "error-impl.h"
#include "orpc.capnp.h"

namespace ferry::detail {

// Deep-copies `from` into `to`, each capability pointer as the same index: the capability
// pointers of ORPC params and results index the message's `caps` (orpc.capnp), which a copy
// keeps in the same order. (capability.cpp)
void copyKeepingCapIndexes(capnp::AnyPointer::Reader from, capnp::AnyPointer::Builder to);

// Request.flags bit 0: the caller expects no response.
constexpr uint16_t kRequestFlagOneway = 1;
// Request.flags bit 1: the method is idempotent (the caller may send it again).
constexpr uint16_t kRequestFlagIdempotent = 2;
constexpr uint16_t kRequestFlagsKnown = kRequestFlagOneway | kRequestFlagIdempotent;
// ErrorInfo.message is truncated to this many bytes.
constexpr size_t kMaxErrorMessage = 4096;

// First segment size for ORPC messages: a null call and a 1 KiB echo fit in one segment.
constexpr unsigned kOrpcFirstSegmentWords = 256;

// The first segments of built messages, reused through spares kept per thread. Cap'n Proto's
// builder needs a zero-filled first segment; given one, it zeroes the words it used when it is
// destroyed. So a spare costs the words the last message used instead of an allocation and
// kOrpcFirstSegmentWords words of zeroes. A segment returns to the spares of the thread that
// destroys its message (a message may be built on one thread and dropped on another); beyond
// kKept spares per thread, and after the thread's spares are gone (thread exit), it is freed.
namespace first_segments {

constexpr size_t kKept = 8;

struct Spares {
  capnp::word* words[kKept] = {};
  size_t count = 0;
  ~Spares();
};

// Set when this thread's spares were destroyed: a message destroyed later frees its segment.
inline thread_local bool sparesGone = false;
inline thread_local Spares spares;

inline Spares::~Spares() {
  sparesGone = true;
  for (size_t i = 0; i < count; ++i) delete[] words[i];
  count = 0;
}

struct Release {
  void operator()(capnp::word* words) const noexcept {
    if (!sparesGone && spares.count < kKept) {
      spares.words[spares.count++] = words;
      return;
    }
    delete[] words;
  }
};

using Segment = std::unique_ptr<capnp::word[], Release>;

// A zero-filled first segment of kOrpcFirstSegmentWords words.
inline Segment take() {
  if (!sparesGone && spares.count > 0) return Segment(spares.words[--spares.count]);
  return Segment(new capnp::word[kOrpcFirstSegmentWords]());
}

}  // namespace first_segments

// A builder over a reused first segment. The segment is declared first so that it outlives the
// builder, which zeroes the words it used as it goes.
struct SegmentBuilder {
  first_segments::Segment segment = first_segments::take();
  capnp::MallocMessageBuilder builder{kj::arrayPtr(segment.get(), kOrpcFirstSegmentWords)};
};

// Received words and their reader in one allocation: the reader, then the words it reads (an
// allocation per received message, not one for the words and one for the reader).
class ReceivedWords {
public:
  struct Free {
    void operator()(ReceivedWords* received) const noexcept {
      received->~ReceivedWords();
      ::operator delete(received);
    }
  };
  using Ptr = std::unique_ptr<ReceivedWords, Free>;

  // A copy of `count` words from `bytes` (any alignment), read with `options`. Throws
  // kj::Exception when Cap'n Proto cannot read them.
  static Ptr copyOf(const void* bytes, size_t count, const capnp::ReaderOptions& options) {
    static_assert(sizeof(ReceivedWords) % alignof(capnp::word) == 0 &&
                  alignof(ReceivedWords) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);
    void* block = ::operator new(sizeof(ReceivedWords) + count * sizeof(capnp::word));
    auto* words = reinterpret_cast<capnp::word*>(static_cast<char*>(block) + sizeof(ReceivedWords));
    std::memcpy(words, bytes, count * sizeof(capnp::word));
    try {
      return Ptr(new (block) ReceivedWords(kj::arrayPtr(words, count), options));
    } catch (...) {
      ::operator delete(block);
      throw;
    }
  }

  capnp::FlatArrayMessageReader& reader() noexcept { return _reader; }

private:
  ReceivedWords(kj::ArrayPtr<const capnp::word> words, const capnp::ReaderOptions& options)
      : _reader(words, options) {}
  ~ReceivedWords() = default;

  capnp::FlatArrayMessageReader _reader;
};

// A Cap'n Proto message owned either as a builder or as received words.
class OrpcMessage {
public:
  OrpcMessage() : _builder(std::make_unique<SegmentBuilder>()) {}

  // Takes ownership of received words.
  explicit OrpcMessage(ReceivedWords::Ptr received) : _received(std::move(received)) {}

  bool isBuilt() const noexcept { return _builder != nullptr; }
  capnp::MallocMessageBuilder& builder() { return _builder->builder; }

  template <typename T>
  typename T::Reader root() {
    if (_builder) return _builder->builder.getRoot<T>().asReader();
    return _received->reader().getRoot<T>();
  }

private:
  std::unique_ptr<SegmentBuilder> _builder;
  ReceivedWords::Ptr _received;
};

// A request being built by a proxy.
class OutgoingRequest {
public:
  OutgoingRequest() : root(message.builder().initRoot<wire::Request>()) {}

  // A deep copy, kept by a caller that may have to resend the request or release its
  // capabilities after a rejection.
  static std::unique_ptr<OutgoingRequest> copyOf(OutgoingRequest& original) {
    auto copy = std::make_unique<OutgoingRequest>();
    copyKeepingCapIndexes(original.message.builder().getRoot<capnp::AnyPointer>().asReader(),
                          copy->message.builder().getRoot<capnp::AnyPointer>());
    copy->root = copy->message.builder().getRoot<wire::Request>();
    return copy;
  }

  OrpcMessage message;
  wire::Request::Builder root;
};

// A request as the serving apartment sees it.
class IncomingRequest {
public:
  explicit IncomingRequest(OrpcMessage message) : _message(std::move(message)) {}
  wire::Request::Reader root() { return _message.root<wire::Request>(); }

private:
  OrpcMessage _message;
};

// A response being built by a stub.
class OutgoingResponse {
public:
  OutgoingResponse() : root(message.builder().initRoot<wire::Response>()) {}
  OrpcMessage message;
  wire::Response::Builder root;
};

class IncomingResponse {
public:
  explicit IncomingResponse(OrpcMessage message) : _message(std::move(message)) {}
  wire::Response::Reader root() { return _message.root<wire::Response>(); }
  // The message itself, for replies that are not ORPC responses (resolver replies).
  OrpcMessage& message() { return _message; }

private:
  OrpcMessage _message;
};

// Fills an ErrorInfo: the code, and the message cut to kMaxErrorMessage bytes. The one place
// that writes an error onto the wire (responses, resolver replies).
inline void writeError(wire::ErrorInfo::Builder out, Errc code, std::string_view message) {
  out.setCode(static_cast<uint16_t>(code));
  if (message.size() > kMaxErrorMessage) message = message.substr(0, kMaxErrorMessage);
  auto text = out.initMessage(static_cast<unsigned>(message.size()));
  std::memcpy(text.begin(), message.data(), message.size());
}

// A response that carries an error and no results.
inline OutgoingResponse errorResponse(Errc code, std::string_view message) {
  OutgoingResponse response;
  writeError(response.root.initError(), code, message);
  return response;
}

// A response that carries `error`, with its schema-declared detail if it has one.
OutgoingResponse errorResponse(const Error& error);

// Throws the error an error response carries (as Error::rethrow does: a schema-declared detail as
// its exception class). A malformed detail is a protocolError.
[[noreturn]] void throwReceivedError(wire::ErrorInfo::Reader info);

}  // namespace ferry::detail
