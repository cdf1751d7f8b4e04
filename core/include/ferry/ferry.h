// ferry: the whole public API.
#pragma once

#include <ferry/error.h>
#include <ferry/future.h>
#include <ferry/git.h>
#include <ferry/ids.h>
#include <ferry/lifetime.h>
#include <ferry/marshal.h>
#include <ferry/message-filter.h>
#include <ferry/object.h>
#include <ferry/owned.h>
#include <ferry/runtime.h>
