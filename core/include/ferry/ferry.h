// ferry: the whole public API.
#pragma once

#if __cplusplus < 202002L
#error "ferry needs C++20: compile with -std=c++20 (pkg-config --cflags ferry gives it)"
#endif

#include <ferry/application-error.h>
#include <ferry/activation.h>
#include <ferry/error.h>
#include <ferry/future.h>
#include <ferry/git.h>
#include <ferry/ids.h>
#include <ferry/lifetime.h>
#include <ferry/log.h>
#include <ferry/marshal.h>
#include <ferry/message-filter.h>
#include <ferry/naming.h>
#include <ferry/object.h>
#include <ferry/owned.h>
#include <ferry/runtime.h>
