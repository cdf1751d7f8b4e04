# Interfaces the core tests implement: each method reports something observable (the thread it ran
# on, a counter, a chain depth) so a test can assert where and how a call was executed.
@0xdeb22b58d13f1f34;

using Cxx = import "/capnp/c++.capnp";
using Ferry = import "/ferry/annotations.capnp";
$Cxx.namespace("testing");

interface Probe {
  # Reports facts about the call as the servant saw them.

  threadId @0 () -> (id :UInt64);
  # A hash of std::this_thread::get_id() of the thread that ran the call.

  echo @1 (data :Data) -> (data :Data);
  nothing @2 () -> ();

  fail @3 (message :Text) -> ();
  # Throws std::runtime_error(message).

  sleepMillis @4 (millis :UInt32) -> ();
  # Blocks its thread for `millis` milliseconds.

  waitForCancel @5 (maxMillis :UInt32) -> (sawCancel :Bool);
  # Polls ferry::callCanceled() for up to `maxMillis`; returns whether the call was canceled.

  count @6 () -> (total :UInt64);
  # Adds one to the servant's counter and returns it: how many times `count` ran (not idempotent).

  peek @7 () -> (total :UInt64) $Ferry.idempotent;
  # The counter, unchanged: running it twice does no harm.

  countSlowly @8 (millis :UInt32) -> (total :UInt64);
  # Adds one to the counter at once, then blocks for `millis` milliseconds and returns the
  # counter as it was right after the addition (not idempotent).
}

interface Callback {
  called @0 (value :Int64) -> (threadId :UInt64);
  # Records `value`; returns the thread that ran it.
}

interface Chain {
  # Two Chains in two STAs bounce a call between them: `bounce(depth, peer)` calls
  # `peer.bounce(depth - 1, self)` until depth is 0, and returns the number of hops.
  bounce @0 (depth :UInt32, peer :Chain) -> (hops :UInt32);
}

interface Holder {
  # Keeps an interface pointer and hands it back, to test identity across apartments.
  set @0 (cb :Callback) -> ();
  get @1 () -> (cb :Callback);
  callBack @2 (value :Int64) -> (threadId :UInt64);
  isSameAs @3 (cb :Callback) -> (same :Bool);
}
