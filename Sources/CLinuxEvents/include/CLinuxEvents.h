// Linux's readiness and wake-up calls (epoll, eventfd), which Swift's Glibc module does not import,
// for LBLoad's closed-loop engine. Empty elsewhere.
#ifndef C_LINUX_EVENTS_H
#define C_LINUX_EVENTS_H

#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#endif

#endif
