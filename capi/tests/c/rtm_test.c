/*
 * The RTMv1 C API, tested from C against the built library.
 *
 * Each test names, above it, the bug it would catch. Tests share the
 * process's one table, so each uses its own protocol ids and networks and
 * deregisters its clients at the end. Exit status 0 when every check
 * passed; each failure prints its file, line and expression.
 *
 * Build and run (what .ci/run does):
 *   cargo build --release -p rtm-capi
 *   cc -std=c11 -Wall -Wextra -Werror -O1 -Icapi/include \
 *      capi/tests/c/rtm_test.c -Ltarget/release -lrtm -lpthread -o rtm_test
 *   LD_LIBRARY_PATH=target/release ./rtm_test
 * RTM_TEST_ROUTES sets the threaded test's table size (default 100000).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "rtm.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                          \
    do {                                                                     \
        checks++;                                                            \
        if (!(cond)) {                                                       \
            failures++;                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
        }                                                                    \
    } while (0)

#define CHECK_EQ(a, b)                                                        \
    do {                                                                      \
        long long va_ = (long long)(a), vb_ = (long long)(b);                 \
        checks++;                                                             \
        if (va_ != vb_) {                                                     \
            failures++;                                                       \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %lld, %s == %lld\n", \
                    __FILE__, __LINE__, #a, va_, #b, vb_);                    \
        }                                                                     \
    } while (0)

/* ----- helpers ------------------------------------------------------------ */

static DWORD ip(const char *s) { return inet_addr(s); }

static RTM_IP_ROUTE ip_route(const char *net, const char *mask, const char *nh,
                             DWORD ifx, DWORD metric) {
    RTM_IP_ROUTE r;
    memset(&r, 0, sizeof r);
    r.RR_Network.N_NetNumber = ip(net);
    r.RR_Network.N_NetMask = ip(mask);
    r.RR_NextHopAddress.N_NetNumber = ip(nh);
    r.RR_InterfaceID = ifx;
    r.RR_FamilySpecificData.FSD_Type = 4;
    r.RR_FamilySpecificData.FSD_Metric = metric;
    SetRouteValid(&r);
    return r;
}

static IP_NETWORK ip_net(const char *net, const char *mask) {
    IP_NETWORK n = {ip(net), ip(mask)};
    return n;
}

static int new_event(void) {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) {
        perror("eventfd");
        exit(2);
    }
    return fd;
}

/* Whether the eventfd is readable (the change event is set), not waiting. */
static int signalled(int fd) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Routes of a family, counted through an enumeration handle. */
static long count_routes(DWORD family, DWORD flags, PVOID criteria) {
    HANDLE e = RtmCreateEnumerationHandle(family, flags, criteria);
    if (e == NULL)
        return RtmGetLastError() == ERROR_NO_ROUTES ? 0 : -1;
    RTM_IP_ROUTE buf[2]; /* room for either family's structure */
    long n = 0;
    while (RtmEnumerateGetNextRoute(e, buf) == NO_ERROR)
        n++;
    RtmCloseEnumerationHandle(e);
    return n;
}

static const char *last_message(void) {
    static char buf[512];
    DWORD size = sizeof buf;
    if (RtmGetLastErrorMessage(buf, &size) != NO_ERROR)
        return "(message too long)";
    return buf;
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

/* ----- the layout --------------------------------------------------------- */

/* Catches a header whose structures drifted from the SDK's layout (C code
 * built against it would hand the library shifted fields). */
static void test_layout(void) {
    CHECK_EQ(sizeof(RTM_IP_ROUTE), 92);
    CHECK_EQ(sizeof(RTM_IPX_ROUTE), 52);
    CHECK_EQ(sizeof(FILETIME), 8);
    CHECK_EQ(offsetof(RTM_IP_ROUTE, RR_Network), 32);
    CHECK_EQ(offsetof(RTM_IP_ROUTE, RR_FamilySpecificData), 48);
    CHECK_EQ(offsetof(RTM_IPX_ROUTE, RR_FamilySpecificData), 44);
}

/* ----- the seed scenario ------------------------------------------------ */

/* Catches a deregistration that leaves the client's routes behind, removes
 * another client's, or does not tell the other client through its queue
 * and event (the scenario RTMv1's docs describe). */
static void test_deregistration_removes_the_clients_routes(void) {
    int ev_a = new_event(), ev_b = new_event();
    HANDLE a = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 1013, RTM_EVENT_FD(ev_a), 0);
    HANDLE b = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 1008, RTM_EVENT_FD(ev_b), 0);
    CHECK(a != NULL && b != NULL);
    ULONG before = RtmGetNetworkCount(RTM_PROTOCOL_FAMILY_IP);

    /* A's three networks, B's one (shared with A's first). */
    const char *nets[] = {"10.10.0.0", "10.11.0.0", "10.12.0.0"};
    DWORD flags = 99;
    RTM_IP_ROUTE cur, prev;
    for (int i = 0; i < 3; i++) {
        RTM_IP_ROUTE r = ip_route(nets[i], "255.255.0.0", "192.0.2.1", 1, 10);
        CHECK_EQ(RtmAddRoute(a, &r, INFINITE, &flags, &cur, &prev), NO_ERROR);
        CHECK_EQ(flags, RTM_ROUTE_ADDED);
        CHECK_EQ(cur.RR_RoutingProtocol, 1013);
        CHECK_EQ(cur.RR_Network.N_NetNumber, ip(nets[i]));
    }
    RTM_IP_ROUTE rb = ip_route("10.10.0.0", "255.255.0.0", "192.0.2.9", 2, 50);
    CHECK_EQ(RtmAddRoute(b, &rb, INFINITE, &flags, NULL, NULL), NO_ERROR);
    CHECK_EQ(flags, RTM_NO_CHANGE); /* worse metric, same priority */
    CHECK_EQ(RtmGetNetworkCount(RTM_PROTOCOL_FAMILY_IP), before + 3);

    /* B heard of A's three adds, in order; A heard nothing of its own. */
    CHECK(signalled(ev_b));
    CHECK(!signalled(ev_a));
    for (int i = 0; i < 3; i++) {
        DWORD rc = RtmDequeueRouteChangeMessage(b, &flags, &cur, &prev);
        CHECK_EQ(rc, i < 2 ? ERROR_MORE_MESSAGES : NO_ERROR);
        CHECK_EQ(flags, RTM_ROUTE_ADDED);
        CHECK_EQ(cur.RR_Network.N_NetNumber, ip(nets[i]));
        CHECK(signalled(ev_b) == (i < 2));
    }
    CHECK_EQ(RtmDequeueRouteChangeMessage(b, &flags, &cur, &prev), ERROR_NO_MESSAGES);
    CHECK_EQ(RtmDequeueRouteChangeMessage(a, &flags, &cur, &prev), ERROR_NO_MESSAGES);

    /* A goes: its routes go, B's stays and is best again. */
    CHECK_EQ(RtmDeregisterClient(a), NO_ERROR);
    CHECK_EQ(RtmGetNetworkCount(RTM_PROTOCOL_FAMILY_IP), before + 1);
    RTM_IP_ROUTE only_a = ip_route("0.0.0.0", "0.0.0.0", "0.0.0.0", 0, 0);
    only_a.RR_RoutingProtocol = 1013;
    CHECK_EQ(count_routes(RTM_PROTOCOL_FAMILY_IP, RTM_ONLY_THIS_PROTOCOL, &only_a), 0);
    IP_NETWORK n10 = ip_net("10.10.0.0", "255.255.0.0");
    RTM_IP_ROUTE best;
    CHECK_EQ(RtmIsRoute(RTM_PROTOCOL_FAMILY_IP, &n10, &best), 1);
    CHECK_EQ(best.RR_RoutingProtocol, 1008);

    /* B is told: 10.10 changed to its own route, 10.11 and 10.12 deleted. */
    CHECK(signalled(ev_b));
    int changed = 0, deleted = 0;
    DWORD rc;
    do {
        memset(&cur, 0, sizeof cur);
        memset(&prev, 0, sizeof prev);
        rc = RtmDequeueRouteChangeMessage(b, &flags, &cur, &prev);
        if (rc != NO_ERROR && rc != ERROR_MORE_MESSAGES)
            break;
        CHECK_EQ(prev.RR_RoutingProtocol, 1013);
        if (flags == RTM_ROUTE_CHANGED) {
            changed++;
            CHECK_EQ(cur.RR_RoutingProtocol, 1008);
        } else if (flags == RTM_ROUTE_DELETED) {
            deleted++;
        }
    } while (rc == ERROR_MORE_MESSAGES);
    CHECK_EQ(rc, NO_ERROR);
    CHECK_EQ(changed, 1);
    CHECK_EQ(deleted, 2);
    CHECK(!signalled(ev_b));

    /* The handle is dead, and the protocol free again. */
    CHECK_EQ(RtmAddRoute(a, &rb, INFINITE, &flags, NULL, NULL), ERROR_INVALID_HANDLE);
    CHECK_EQ(RtmDeregisterClient(a), ERROR_INVALID_HANDLE);
    HANDLE a2 = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 1013, NULL, 0);
    CHECK(a2 != NULL && a2 != a);
    CHECK_EQ(RtmDeregisterClient(a2), NO_ERROR);
    CHECK_EQ(RtmDeregisterClient(b), NO_ERROR);
    CHECK_EQ(RtmGetNetworkCount(RTM_PROTOCOL_FAMILY_IP), before);
    close(ev_a);
    close(ev_b);
}

/* ----- every call ----------------------------------------------------------- */

/* Catches a call whose C binding drops or garbles an argument or a result:
 * each call's effect is checked through a different call. */
static void test_every_call(void) {
    RtmSetProtocolPriority(2001, 10); /* OSPF-like: wins */
    RtmSetProtocolPriority(2002, 120);
    int ev = new_event();
    HANDLE hi = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 2001, NULL, 0);
    HANDLE lo = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 2002, RTM_EVENT_FD(ev), 0);
    CHECK(hi != NULL && lo != NULL);
    DWORD flags;
    RTM_IP_ROUTE cur, prev;

    /* Add, priority beats metric, and the loser's queue hears of it. */
    RTM_IP_ROUTE r_lo = ip_route("172.16.0.0", "255.255.0.0", "192.0.2.2", 2, 1);
    RTM_IP_ROUTE r_hi = ip_route("172.16.0.0", "255.255.0.0", "192.0.2.1", 1, 100);
    r_hi.RR_ProtocolSpecificData.PSD_Data[0] = 0xC0FFEE;
    CHECK_EQ(RtmAddRoute(lo, &r_lo, INFINITE, &flags, &cur, NULL), NO_ERROR);
    CHECK_EQ(flags, RTM_ROUTE_ADDED);
    CHECK_EQ(RtmAddRoute(hi, &r_hi, 600, &flags, &cur, &prev), NO_ERROR);
    CHECK_EQ(flags, RTM_ROUTE_CHANGED);
    CHECK_EQ(prev.RR_RoutingProtocol, 2002);
    CHECK_EQ(cur.RR_RoutingProtocol, 2001);
    CHECK_EQ(cur.RR_FamilySpecificData.FSD_Priority, 10); /* set by the RTM */
    CHECK_EQ(cur.RR_ProtocolSpecificData.PSD_Data[0], 0xC0FFEE);
    CHECK_EQ(RtmDequeueRouteChangeMessage(lo, &flags, &cur, &prev), NO_ERROR);
    CHECK_EQ(flags, RTM_ROUTE_CHANGED);
    CHECK_EQ(cur.RR_NextHopAddress.N_NetNumber, ip("192.0.2.1"));

    /* Re-adding the same key refreshes it: no change. */
    CHECK_EQ(RtmAddRoute(hi, &r_hi, INFINITE, &flags, NULL, NULL), NO_ERROR);
    CHECK_EQ(flags, RTM_NO_CHANGE);

    /* RtmIsRoute, the network count, the route's age. */
    IP_NETWORK n = ip_net("172.16.0.0", "255.255.0.0");
    RTM_IP_ROUTE best;
    CHECK_EQ(RtmIsRoute(RTM_PROTOCOL_FAMILY_IP, &n, &best), 1);
    CHECK_EQ(best.RR_RoutingProtocol, 2001);
    CHECK(RtmIsRoute(RTM_PROTOCOL_FAMILY_IP, &n, NULL));
    IP_NETWORK none = ip_net("172.17.0.0", "255.255.0.0");
    CHECK_EQ(RtmIsRoute(RTM_PROTOCOL_FAMILY_IP, &none, &best), 0);
    CHECK_EQ(RtmGetLastError(), NO_ERROR);
    CHECK(RtmGetNetworkCount(RTM_PROTOCOL_FAMILY_IP) >= 1);
    ULONG age = RtmGetRouteAge(&best);
    CHECK(age <= 2);
    CHECK_EQ(RtmGetLastError(), NO_ERROR);

    /* The longest-prefix match: the /24 inside wins over the /16. */
    RTM_IP_ROUTE r24 = ip_route("172.16.5.0", "255.255.255.0", "192.0.2.24", 1, 1);
    CHECK_EQ(RtmAddRoute(lo, &r24, INFINITE, &flags, NULL, NULL), NO_ERROR);
    RTM_IP_ROUTE hit;
    CHECK_EQ(RtmLookupIPDestination(ip("172.16.5.77"), &hit), 1);
    CHECK_EQ(hit.RR_Network.N_NetMask, ip("255.255.255.0"));
    CHECK_EQ(RtmLookupIPDestination(ip("172.16.9.1"), &hit), 1);
    CHECK_EQ(hit.RR_NextHopAddress.N_NetNumber, ip("192.0.2.1"));
    CHECK_EQ(RtmLookupIPDestination(ip("203.0.113.1"), &hit), 0);
    CHECK_EQ(RtmGetLastError(), NO_ERROR);

    /* Enumeration handles: all of 172.16/16's routes, then best only. */
    RTM_IP_ROUTE crit = ip_route("172.16.0.0", "255.255.0.0", "0.0.0.0", 0, 0);
    CHECK_EQ(count_routes(RTM_PROTOCOL_FAMILY_IP, RTM_ONLY_THIS_NETWORK, &crit), 2);
    CHECK_EQ(count_routes(RTM_PROTOCOL_FAMILY_IP,
                          RTM_ONLY_THIS_NETWORK | RTM_ONLY_BEST_ROUTES, &crit), 1);
    HANDLE e = RtmCreateEnumerationHandle(RTM_PROTOCOL_FAMILY_IP, RTM_ONLY_THIS_NETWORK, &crit);
    CHECK(e != NULL);
    RTM_IP_ROUTE got;
    CHECK_EQ(RtmEnumerateGetNextRoute(e, &got), NO_ERROR);
    CHECK_EQ(RtmEnumerateGetNextRoute(e, &got), NO_ERROR);
    CHECK_EQ(RtmEnumerateGetNextRoute(e, &got), ERROR_NO_MORE_ROUTES);
    CHECK_EQ(RtmEnumerateGetNextRoute(e, &got), ERROR_NO_MORE_ROUTES);
    CHECK_EQ(RtmCloseEnumerationHandle(e), NO_ERROR);
    CHECK_EQ(RtmCloseEnumerationHandle(e), ERROR_INVALID_HANDLE);
    CHECK_EQ(RtmEnumerateGetNextRoute(e, &got), ERROR_INVALID_HANDLE);

    /* GetFirst / GetNext walk the network's routes in key order (protocol
     * 2001 before 2002), then ERROR_NO_ROUTES; RtmGetSpecificRoute finds
     * one by network, protocol and interface. */
    RTM_IP_ROUTE w = crit;
    CHECK_EQ(RtmGetFirstRoute(RTM_PROTOCOL_FAMILY_IP, RTM_ONLY_THIS_NETWORK, &w), NO_ERROR);
    CHECK_EQ(w.RR_RoutingProtocol, 2001);
    CHECK_EQ(RtmGetNextRoute(RTM_PROTOCOL_FAMILY_IP, RTM_ONLY_THIS_NETWORK, &w), NO_ERROR);
    CHECK_EQ(w.RR_RoutingProtocol, 2002);
    CHECK_EQ(RtmGetNextRoute(RTM_PROTOCOL_FAMILY_IP, RTM_ONLY_THIS_NETWORK, &w), ERROR_NO_ROUTES);
    RTM_IP_ROUTE spec = crit;
    spec.RR_RoutingProtocol = 2002;
    spec.RR_InterfaceID = 2;
    CHECK_EQ(RtmGetSpecificRoute(RTM_PROTOCOL_FAMILY_IP, &spec), NO_ERROR);
    CHECK_EQ(spec.RR_NextHopAddress.N_NetNumber, ip("192.0.2.2"));

    /* Disable the winner: the loser becomes best; enumeration skips the
     * disabled route unless asked; enable it again. */
    RTM_IP_ROUTE all = crit;
    CHECK_EQ(RtmBlockSetRouteEnable(hi, 0, NULL, 0), NO_ERROR);
    CHECK_EQ(RtmIsRoute(RTM_PROTOCOL_FAMILY_IP, &n, &best), 1);
    CHECK_EQ(best.RR_RoutingProtocol, 2002);
    CHECK_EQ(count_routes(RTM_PROTOCOL_FAMILY_IP, RTM_ONLY_THIS_NETWORK, &all), 1);
    CHECK_EQ(count_routes(RTM_PROTOCOL_FAMILY_IP,
                          RTM_ONLY_THIS_NETWORK | RTM_INCLUDE_DISABLED_ROUTES, &all), 2);
    CHECK_EQ(RtmBlockSetRouteEnable(hi, 0, NULL, 1), NO_ERROR);
    CHECK_EQ(RtmIsRoute(RTM_PROTOCOL_FAMILY_IP, &n, &best), 1);
    CHECK_EQ(best.RR_RoutingProtocol, 2001);

    /* Delete: a non-best route (no change), then the best (changed to the
     * other), then the last (deleted). */
    CHECK_EQ(RtmDeleteRoute(lo, &r24, &flags, &cur), NO_ERROR);
    CHECK_EQ(flags, RTM_ROUTE_DELETED);
    CHECK_EQ(RtmDeleteRoute(lo, &r_lo, &flags, &cur), NO_ERROR);
    CHECK_EQ(flags, RTM_NO_CHANGE);
    CHECK_EQ(RtmAddRoute(lo, &r_lo, INFINITE, &flags, NULL, NULL), NO_ERROR);
    CHECK_EQ(RtmDeleteRoute(hi, &r_hi, &flags, &cur), NO_ERROR);
    CHECK_EQ(flags, RTM_ROUTE_CHANGED);
    CHECK_EQ(cur.RR_RoutingProtocol, 2002);
    CHECK_EQ(RtmDeleteRoute(hi, &r_hi, &flags, &cur), ERROR_NO_SUCH_ROUTE);

    /* Convert lo's route to hi's (autostatic), then block-delete it. */
    CHECK_EQ(RtmBlockConvertRoutesToStatic(hi, RTM_ONLY_THIS_NETWORK, &crit), NO_ERROR);
    CHECK_EQ(RtmIsRoute(RTM_PROTOCOL_FAMILY_IP, &n, &best), 1);
    CHECK_EQ(best.RR_RoutingProtocol, 2001);
    CHECK_EQ(RtmBlockDeleteRoutes(hi, RTM_ONLY_THIS_NETWORK, &crit), NO_ERROR);
    CHECK_EQ(RtmIsRoute(RTM_PROTOCOL_FAMILY_IP, &n, NULL), 0);
    CHECK_EQ(RtmBlockDeleteRoutes(hi, 0, NULL), ERROR_NO_ROUTES);

    /* Drain lo's queue, then go. */
    DWORD rc;
    do
        rc = RtmDequeueRouteChangeMessage(lo, &flags, NULL, NULL);
    while (rc == ERROR_MORE_MESSAGES);
    CHECK(!signalled(ev));
    CHECK_EQ(RtmDeregisterClient(hi), NO_ERROR);
    CHECK_EQ(RtmDeregisterClient(lo), NO_ERROR);
    close(ev);
}

/* Catches IPX routes read or written with IP's layout, or IPX network
 * numbers byte-swapped at the boundary. */
static void test_ipx(void) {
    HANDLE x = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IPX, 3001, NULL, RTM_PROTOCOL_SINGLE_ROUTE);
    CHECK(x != NULL);
    RTM_IPX_ROUTE r;
    memset(&r, 0, sizeof r);
    r.RR_Network.N_NetNumber = htonl(0x00C0FFEE);
    memcpy(r.RR_NextHopAddress.NHA_Mac, "\x02\x00\x00\x00\x00\x01", 6);
    r.RR_InterfaceID = 3;
    r.RR_FamilySpecificData.FSD_TickCount = 5;
    r.RR_FamilySpecificData.FSD_HopCount = 2;
    DWORD flags;
    RTM_IPX_ROUTE cur;
    CHECK_EQ(RtmAddRoute(x, &r, INFINITE, &flags, &cur, NULL), NO_ERROR);
    CHECK_EQ(flags, RTM_ROUTE_ADDED);
    CHECK_EQ(cur.RR_FamilySpecificData.FSD_TickCount, 5);
    CHECK_EQ(cur.RR_NextHopAddress.NHA_Mac[5], 1);
    /* Single-route: another next hop replaces the route. */
    r.RR_NextHopAddress.NHA_Mac[5] = 2;
    CHECK_EQ(RtmAddRoute(x, &r, INFINITE, &flags, &cur, NULL), NO_ERROR);
    CHECK_EQ(flags, RTM_ROUTE_CHANGED);
    IPX_NETWORK n = {htonl(0x00C0FFEE)};
    RTM_IPX_ROUTE best;
    CHECK_EQ(RtmIsRoute(RTM_PROTOCOL_FAMILY_IPX, &n, &best), 1);
    CHECK_EQ(best.RR_NextHopAddress.NHA_Mac[5], 2);
    CHECK_EQ(best.RR_Network.N_NetNumber, htonl(0x00C0FFEE));
    CHECK_EQ(RtmGetNetworkCount(RTM_PROTOCOL_FAMILY_IPX), 1);
    CHECK_EQ(count_routes(RTM_PROTOCOL_FAMILY_IPX, 0, NULL), 1);
    RTM_IPX_ROUTE w;
    memset(&w, 0, sizeof w);
    CHECK_EQ(RtmGetFirstRoute(RTM_PROTOCOL_FAMILY_IPX, 0, &w), NO_ERROR);
    CHECK_EQ(w.RR_InterfaceID, 3);
    CHECK_EQ(RtmGetNextRoute(RTM_PROTOCOL_FAMILY_IPX, 0, &w), ERROR_NO_ROUTES);
    CHECK_EQ(RtmDeleteRoute(x, &r, &flags, NULL), NO_ERROR);
    CHECK_EQ(flags, RTM_ROUTE_DELETED);
    CHECK_EQ(RtmGetNetworkCount(RTM_PROTOCOL_FAMILY_IPX), 0);
    CHECK_EQ(RtmGetLastError(), NO_ERROR); /* 0 is an empty table, not an error */
    CHECK_EQ(RtmDeregisterClient(x), NO_ERROR);
}

/* ----- bad input -------------------------------------------------------- */

/* Every IP route (any protocol), as a checksum of the table: a refused
 * call must leave it exactly as it was. */
static unsigned long long table_digest(void) {
    HANDLE e = RtmCreateEnumerationHandle(RTM_PROTOCOL_FAMILY_IP, RTM_INCLUDE_DISABLED_ROUTES, NULL);
    if (e == NULL)
        return 0;
    unsigned long long h = 1469598103934665603ULL;
    RTM_IP_ROUTE r;
    while (RtmEnumerateGetNextRoute(e, &r) == NO_ERROR) {
        const unsigned char *p = (const unsigned char *)&r;
        for (size_t i = 0; i < sizeof r; i++)
            h = (h ^ p[i]) * 1099511628211ULL;
    }
    RtmCloseEnumerationHandle(e);
    return h;
}

/* Catches a bad argument that crashes, is accepted, or changes the table
 * before it is refused: each gets its documented code, and the table's
 * digest is the same before and after. */
static void test_bad_input_is_refused_and_changes_nothing(void) {
    HANDLE c = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 4001, NULL, 0);
    CHECK(c != NULL);
    RTM_IP_ROUTE good = ip_route("198.51.100.0", "255.255.255.0", "192.0.2.1", 1, 1);
    DWORD flags;
    CHECK_EQ(RtmAddRoute(c, &good, INFINITE, &flags, NULL, NULL), NO_ERROR);
    unsigned long long digest = table_digest();
    HANDLE e = RtmCreateEnumerationHandle(RTM_PROTOCOL_FAMILY_IP, 0, NULL);
    CHECK(e != NULL);

    /* Handles: NULL, made up, of the other kind, after deregistration. */
    CHECK_EQ(RtmAddRoute(NULL, &good, INFINITE, &flags, NULL, NULL), ERROR_INVALID_HANDLE);
    CHECK_EQ(RtmAddRoute((HANDLE)(intptr_t)0x7fff1234, &good, INFINITE, &flags, NULL, NULL),
             ERROR_INVALID_HANDLE);
    CHECK_EQ(RtmAddRoute(e, &good, INFINITE, &flags, NULL, NULL), ERROR_INVALID_HANDLE);
    CHECK_EQ(RtmEnumerateGetNextRoute(c, &good), ERROR_INVALID_HANDLE);
    CHECK_EQ(RtmCloseEnumerationHandle(c), ERROR_INVALID_HANDLE);
    CHECK_EQ(RtmDeregisterClient(e), ERROR_INVALID_HANDLE);
    CHECK_EQ(RtmDequeueRouteChangeMessage(c, &flags, NULL, NULL), ERROR_INVALID_HANDLE); /* no event */
    CHECK(strstr(last_message(), "without notifications") != NULL);
    CHECK_EQ(RtmBlockDeleteRoutes(NULL, 0, NULL), ERROR_INVALID_HANDLE);
    CHECK_EQ(RtmBlockSetRouteEnable(NULL, 0, NULL, 0), ERROR_INVALID_HANDLE);
    CHECK_EQ(RtmBlockConvertRoutesToStatic(NULL, 0, NULL), ERROR_INVALID_HANDLE);
    CHECK_EQ(RtmDeleteRoute(NULL, &good, &flags, NULL), ERROR_INVALID_HANDLE);

    /* NULL pointers where one is required. */
    CHECK_EQ(RtmAddRoute(c, NULL, INFINITE, &flags, NULL, NULL), ERROR_INVALID_PARAMETER);
    CHECK(strstr(last_message(), "Route is NULL") != NULL);
    CHECK_EQ(RtmAddRoute(c, &good, INFINITE, NULL, NULL, NULL), ERROR_INVALID_PARAMETER);
    CHECK_EQ(RtmDeleteRoute(c, NULL, &flags, NULL), ERROR_INVALID_PARAMETER);
    CHECK_EQ(RtmDeleteRoute(c, &good, NULL, NULL), ERROR_INVALID_PARAMETER);
    CHECK_EQ(RtmIsRoute(RTM_PROTOCOL_FAMILY_IP, NULL, NULL), 0);
    CHECK_EQ(RtmGetLastError(), ERROR_INVALID_PARAMETER);
    CHECK_EQ(RtmGetRouteAge(NULL), INFINITE);
    CHECK_EQ(RtmGetLastError(), ERROR_INVALID_PARAMETER);
    CHECK_EQ(RtmEnumerateGetNextRoute(e, NULL), ERROR_INVALID_PARAMETER);
    CHECK_EQ(RtmGetFirstRoute(RTM_PROTOCOL_FAMILY_IP, 0, NULL), ERROR_INVALID_PARAMETER);
    CHECK_EQ(RtmGetNextRoute(RTM_PROTOCOL_FAMILY_IP, 0, NULL), ERROR_INVALID_PARAMETER);
    CHECK_EQ(RtmLookupIPDestination(ip("198.51.100.1"), NULL), 0);
    CHECK_EQ(RtmGetLastError(), ERROR_INVALID_PARAMETER);
    CHECK(RtmCreateEnumerationHandle(RTM_PROTOCOL_FAMILY_IP, RTM_ONLY_THIS_NETWORK, NULL) == NULL);
    CHECK_EQ(RtmGetLastError(), ERROR_INVALID_PARAMETER);
    CHECK_EQ(RtmBlockDeleteRoutes(c, RTM_ONLY_THIS_INTERFACE, NULL), ERROR_INVALID_PARAMETER);

    /* Families and flags. */
    CHECK(RtmRegisterClient(2, 4002, NULL, 0) == NULL);
    CHECK_EQ(RtmGetLastError(), ERROR_INVALID_PARAMETER);
    CHECK(RtmRegisterClient(23, 4002, NULL, 0) == NULL);
    CHECK(strstr(last_message(), "IPv6") != NULL);
    CHECK(RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 4002, NULL, 0x2) == NULL);
    CHECK_EQ(RtmGetLastError(), ERROR_INVALID_PARAMETER);
    CHECK_EQ(RtmGetNetworkCount(7), 0);
    CHECK_EQ(RtmGetLastError(), ERROR_INVALID_PARAMETER);
    CHECK(RtmCreateEnumerationHandle(9, 0, NULL) == NULL);
    CHECK_EQ(RtmGetLastError(), ERROR_INVALID_PARAMETER);
    CHECK(RtmCreateEnumerationHandle(RTM_PROTOCOL_FAMILY_IP, 0x40, NULL) == NULL);
    CHECK_EQ(RtmGetLastError(), ERROR_INVALID_PARAMETER);
    CHECK_EQ(RtmBlockDeleteRoutes(c, 0x40, NULL), ERROR_INVALID_PARAMETER);
    CHECK_EQ(RtmGetFirstRoute(5, 0, &good), ERROR_INVALID_PARAMETER);
    IP_NETWORK n = ip_net("198.51.100.0", "255.255.255.0");
    CHECK_EQ(RtmIsRoute(3, &n, NULL), 0);
    CHECK_EQ(RtmGetLastError(), ERROR_INVALID_PARAMETER);

    /* Route fields: a non-contiguous mask, host bits, a TTL over the
     * limit, undefined FSD flags. */
    RTM_IP_ROUTE bad = good;
    bad.RR_Network.N_NetMask = ip("255.0.255.0");
    CHECK_EQ(RtmAddRoute(c, &bad, INFINITE, &flags, NULL, NULL), ERROR_INVALID_PARAMETER);
    CHECK(strstr(last_message(), "not contiguous") != NULL);
    bad = good;
    bad.RR_Network.N_NetNumber = ip("198.51.100.7");
    CHECK_EQ(RtmAddRoute(c, &bad, INFINITE, &flags, NULL, NULL), ERROR_INVALID_PARAMETER);
    CHECK(strstr(last_message(), "RR_Network") != NULL);
    CHECK_EQ(RtmAddRoute(c, &good, 2147484, &flags, NULL, NULL), ERROR_INVALID_PARAMETER);
    CHECK_EQ(RtmAddRoute(c, &good, 2147483, &flags, NULL, NULL), NO_ERROR); /* the limit itself */
    CHECK_EQ(RtmAddRoute(c, &good, INFINITE, &flags, NULL, NULL), NO_ERROR);
    digest = table_digest(); /* the refresh moved the timestamp */
    bad = good;
    bad.RR_FamilySpecificData.FSD_Flags = 0x80;
    CHECK_EQ(RtmAddRoute(c, &bad, INFINITE, &flags, NULL, NULL), ERROR_INVALID_PARAMETER);
    bad = good;
    bad.RR_TimeStamp.dwHighDateTime = 0x7fffffff; /* far in the future */
    CHECK_EQ(RtmGetRouteAge(&bad), INFINITE);
    CHECK_EQ(RtmGetLastError(), ERROR_INVALID_PARAMETER);

    /* Change events: not an eventfd, a blocking one, a closed fd. */
    int p[2];
    CHECK_EQ(pipe(p), 0);
    CHECK(RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 4003, RTM_EVENT_FD(p[0]), 0) == NULL);
    CHECK_EQ(RtmGetLastError(), ERROR_INVALID_PARAMETER);
    CHECK(strstr(last_message(), "not an eventfd") != NULL);
    int blocking = eventfd(0, 0);
    CHECK(RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 4003, RTM_EVENT_FD(blocking), 0) == NULL);
    CHECK(strstr(last_message(), "EFD_NONBLOCK") != NULL);
    int closed = new_event();
    close(closed);
    CHECK(RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 4003, RTM_EVENT_FD(closed), 0) == NULL);
    CHECK_EQ(RtmGetLastError(), ERROR_INVALID_PARAMETER);
    close(p[0]);
    close(p[1]);
    close(blocking);

    /* A duplicate registration. */
    CHECK(RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 4001, NULL, 0) == NULL);
    CHECK_EQ(RtmGetLastError(), ERROR_CLIENT_ALREADY_EXISTS);

    /* The last-error message: too small a buffer, a NULL size. */
    char small[4];
    DWORD size = sizeof small;
    CHECK_EQ(RtmGetLastErrorMessage(small, &size), ERROR_INSUFFICIENT_BUFFER);
    CHECK(size > sizeof small);
    CHECK_EQ(RtmGetLastErrorMessage(NULL, &size), ERROR_INSUFFICIENT_BUFFER);
    CHECK_EQ(RtmGetLastErrorMessage(small, NULL), ERROR_INVALID_PARAMETER);
    char *big = malloc(size);
    CHECK_EQ(RtmGetLastErrorMessage(big, &size), NO_ERROR);
    CHECK(strstr(big, "4001") != NULL);
    CHECK_EQ(RtmGetLastError(), ERROR_CLIENT_ALREADY_EXISTS); /* reading it kept it */
    free(big);

    CHECK(table_digest() == digest);
    CHECK_EQ(RtmCloseEnumerationHandle(e), NO_ERROR);
    CHECK_EQ(RtmDeregisterClient(c), NO_ERROR);
}

/* Catches a resource failure that crashes or leaves a half-registered
 * client: with no descriptor left for rtm's copy of the event,
 * registration is ERROR_NO_SYSTEM_RESOURCES and the protocol stays free. */
static void test_a_resource_shortage_is_reported(void) {
    int ev = new_event();
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    low = old;
    low.rlim_cur = ev + 1; /* no descriptor above ev may be made */
    setrlimit(RLIMIT_NOFILE, &low);
    HANDLE h = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 5001, RTM_EVENT_FD(ev), 0);
    DWORD code = RtmGetLastError();
    setrlimit(RLIMIT_NOFILE, &old);
    CHECK(h == NULL);
    CHECK_EQ(code, ERROR_NO_SYSTEM_RESOURCES);
    h = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 5001, RTM_EVENT_FD(ev), 0);
    CHECK(h != NULL);
    /* The caller may close its copy: rtm holds its own. */
    close(ev);
    HANDLE other = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 5002, NULL, 0);
    RTM_IP_ROUTE r = ip_route("100.64.0.0", "255.192.0.0", "192.0.2.1", 1, 1);
    DWORD flags;
    CHECK_EQ(RtmAddRoute(other, &r, INFINITE, &flags, NULL, NULL), NO_ERROR);
    CHECK_EQ(RtmDequeueRouteChangeMessage(h, &flags, NULL, NULL), NO_ERROR);
    CHECK_EQ(flags, RTM_ROUTE_ADDED);
    CHECK_EQ(RtmDeregisterClient(other), NO_ERROR);
    CHECK_EQ(RtmDeregisterClient(h), NO_ERROR);
}

/* ----- a client's slips and its own descriptor ------------------------- */

/* Catches rtm blocking on a client's own descriptor: rtm's copy of the
 * eventfd shares the open file description, so a client that clears
 * O_NONBLOCK after registering once made rtm's reset read block under the
 * client's queue lock (its dequeue never returned, and every writer that
 * had to queue a message for it hung). An alarm turns a hang into a
 * failure (SIGALRM ends the test). */
static void test_a_client_cannot_block_rtm_through_its_event(void) {
    int ev = new_event();
    HANDLE c = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 6001, RTM_EVENT_FD(ev), 0);
    HANDLE w = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 6002, NULL, 0);
    CHECK(c != NULL && w != NULL);
    CHECK_EQ(fcntl(ev, F_SETFL, fcntl(ev, F_GETFL) & ~O_NONBLOCK), 0);
    alarm(20);
    DWORD flags;
    /* An empty queue: rtm resets an unsignalled event (the read that blocked). */
    CHECK_EQ(RtmDequeueRouteChangeMessage(c, &flags, NULL, NULL), ERROR_NO_MESSAGES);
    RTM_IP_ROUTE r = ip_route("100.96.0.0", "255.255.0.0", "192.0.2.1", 1, 1);
    CHECK_EQ(RtmAddRoute(w, &r, INFINITE, &flags, NULL, NULL), NO_ERROR);
    CHECK(signalled(ev));
    CHECK_EQ(RtmDequeueRouteChangeMessage(c, &flags, NULL, NULL), NO_ERROR);
    CHECK(!signalled(ev));
    CHECK_EQ(RtmDequeueRouteChangeMessage(c, &flags, NULL, NULL), ERROR_NO_MESSAGES);
    /* The client reads its own event (it should not), then rtm resets it. */
    CHECK_EQ(RtmDeleteRoute(w, &r, &flags, NULL), NO_ERROR);
    uint64_t value;
    CHECK_EQ(read(ev, &value, sizeof value), (long)sizeof value);
    CHECK_EQ(RtmDequeueRouteChangeMessage(c, &flags, NULL, NULL), NO_ERROR);
    CHECK_EQ(RtmDequeueRouteChangeMessage(c, &flags, NULL, NULL), ERROR_NO_MESSAGES);
    alarm(0);
    CHECK_EQ(RtmDeregisterClient(w), NO_ERROR);
    CHECK_EQ(RtmDeregisterClient(c), NO_ERROR);
    close(ev);
}

/* The descriptors of this process that are eventfds, as a bit set. */
static void eventfds(unsigned char set[1024 / 8]) {
    memset(set, 0, 1024 / 8);
    for (int fd = 0; fd < 1024; fd++) {
        char path[64], link[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n > 0) {
            link[n] = 0;
            if (strcmp(link, "anon_inode:[eventfd]") == 0)
                set[fd / 8] |= (unsigned char)(1 << (fd % 8));
        }
    }
}

/* Catches handles that take a porting slip for a real handle: the first
 * client's handle was (HANDLE)1, so any small number named a client; and a
 * bare fd passed instead of RTM_EVENT_FD(fd) named fd - 1, possibly rtm's
 * own copy of another client's event. Each slip must be refused, with a
 * message that says which slip it was. */
static void test_handle_slips_are_refused(void) {
    HANDLE c = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 6101, NULL, 0);
    CHECK(c != NULL);
    DWORD flags;
    RTM_IP_ROUTE r = ip_route("100.97.0.0", "255.255.0.0", "192.0.2.1", 1, 1);
    CHECK_EQ(RtmAddRoute(c, &r, INFINITE, &flags, NULL, NULL), NO_ERROR);
    for (intptr_t small = 1; small < 4096; small++)
        CHECK_EQ(RtmAddRoute((HANDLE)small, &r, INFINITE, &flags, NULL, NULL),
                 ERROR_INVALID_HANDLE);
    CHECK(strstr(last_message(), "not a handle rtm issued") != NULL);
    /* An enumeration handle where a client handle belongs, and back. */
    HANDLE e = RtmCreateEnumerationHandle(RTM_PROTOCOL_FAMILY_IP, 0, NULL);
    CHECK(e != NULL);
    CHECK_EQ(RtmDeregisterClient(e), ERROR_INVALID_HANDLE);
    CHECK(strstr(last_message(), "an enumeration handle, not a client handle") != NULL);
    CHECK_EQ(RtmCloseEnumerationHandle(c), ERROR_INVALID_HANDLE);
    CHECK(strstr(last_message(), "a client handle, not an enumeration handle") != NULL);
    CHECK_EQ(RtmCloseEnumerationHandle(e), NO_ERROR);

    /* A bare descriptor as the change event, and the old fd + 1 encoding. */
    int ev = new_event();
    CHECK(RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 6102, (HANDLE)(intptr_t)ev, 0) == NULL);
    CHECK_EQ(RtmGetLastError(), ERROR_INVALID_PARAMETER);
    CHECK(strstr(last_message(), "not the descriptor itself") != NULL);
    CHECK(RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 6102, (HANDLE)(intptr_t)(ev + 1), 0) == NULL);
    CHECK_EQ(RtmGetLastError(), ERROR_INVALID_PARAMETER);
    /* rtm's own copy of another client's event is not the caller's. */
    unsigned char before[1024 / 8], after[1024 / 8];
    eventfds(before);
    HANDLE owner = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 6103, RTM_EVENT_FD(ev), 0);
    CHECK(owner != NULL);
    eventfds(after);
    int rtms = -1;
    for (int fd = 0; fd < 1024; fd++)
        if ((after[fd / 8] & ~before[fd / 8]) & (1 << (fd % 8)))
            rtms = fd;
    CHECK(rtms >= 0);
    CHECK(RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 6102, RTM_EVENT_FD(rtms), 0) == NULL);
    CHECK_EQ(RtmGetLastError(), ERROR_INVALID_PARAMETER);
    CHECK(strstr(last_message(), "rtm's own copy") != NULL);
    /* Deregistered, rtm's copy is closed: the number names nothing of rtm's. */
    CHECK_EQ(RtmDeregisterClient(owner), NO_ERROR);
    HANDLE again = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 6102, RTM_EVENT_FD(ev), 0);
    CHECK(again != NULL);
    CHECK_EQ(RtmDeregisterClient(again), NO_ERROR);
    CHECK_EQ(RtmDeregisterClient(c), NO_ERROR);
    close(ev);
}

/* ----- lookups while a big client goes -------------------------------- */

struct lookups {
    atomic_int stop;
    int routes;
    atomic_long done;
    long misses;    /* FALSE: no route at all (the /7 is always there) */
    long wrong;     /* a route that is neither a /24 nor the /7 */
    double worst_us;
};

static void *lookup_loop(void *arg) {
    struct lookups *l = arg;
    RTM_IP_ROUTE r;
    unsigned i = 0;
    while (!l->stop) {
        /* An address in the k-th /24 (the big client's routes). */
        unsigned k = i++ % (unsigned)l->routes;
        DWORD a = htonl(0x14000001u + (k << 8));
        double t0 = now_us();
        BOOL hit = RtmLookupIPDestination(a, &r);
        double dt = now_us() - t0;
        if (dt > l->worst_us)
            l->worst_us = dt;
        if (!hit)
            l->misses++;
        else if (!(r.RR_RoutingProtocol == 6001 && r.RR_Network.N_NetNumber == (a & ip("255.255.255.0")) &&
                   r.RR_Network.N_NetMask == ip("255.255.255.0")) &&
                 !(r.RR_RoutingProtocol == 6002 && r.RR_Network.N_NetMask == ip("254.0.0.0")))
            l->wrong++;
        l->done++;
    }
    return NULL;
}

/* Catches a lookup that fails, or returns a freed or foreign route, while
 * a client with 100 k routes deregisters on another thread, and a
 * deregistration that leaves any of them behind. Prints how many lookups
 * ran during the deregistration and the slowest. */
static void test_lookups_go_on_while_a_big_client_deregisters(void) {
    const char *env = getenv("RTM_TEST_ROUTES");
    int n = env ? atoi(env) : 100000;
    if (n < 1 || n > 131072) /* the /24s must stay inside the cover /7 */
        n = 100000;
    HANDLE big = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 6001, NULL, 0);
    HANDLE cover = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 6002, NULL, 0);
    CHECK(big != NULL && cover != NULL);
    /* The cover: 20.0.0.0/7 holds every /24 below (20.0.0.0 - 21.255.255.0). */
    RTM_IP_ROUTE r8 = ip_route("20.0.0.0", "254.0.0.0", "192.0.2.8", 1, 1);
    DWORD flags;
    CHECK_EQ(RtmAddRoute(cover, &r8, INFINITE, &flags, NULL, NULL), NO_ERROR);
    double t0 = now_us();
    for (int k = 0; k < n; k++) {
        RTM_IP_ROUTE r = ip_route("0.0.0.0", "255.255.255.0", "192.0.2.24", 2, 1);
        r.RR_Network.N_NetNumber = htonl(0x14000000u + ((unsigned)k << 8));
        if (RtmAddRoute(big, &r, INFINITE, &flags, NULL, NULL) != NO_ERROR) {
            CHECK(!"add failed");
            break;
        }
    }
    double add_s = (now_us() - t0) / 1e6;
    CHECK_EQ(RtmGetNetworkCount(RTM_PROTOCOL_FAMILY_IP), (ULONG)n + 1);

    struct lookups l = {0, n, 0, 0, 0, 0.0};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, lookup_loop, &l), 0);
    while (l.done < 1000) /* the reader is running */
        sched_yield();
    long before = l.done;
    double d0 = now_us();
    CHECK_EQ(RtmDeregisterClient(big), NO_ERROR);
    double dereg_s = (now_us() - d0) / 1e6;
    long during = l.done - before;
    l.stop = 1;
    pthread_join(t, NULL);

    CHECK_EQ(l.misses, 0);
    CHECK_EQ(l.wrong, 0);
    if (n >= 50000) /* a window of tens of milliseconds at least */
        CHECK(during > 0);
    CHECK_EQ(RtmGetNetworkCount(RTM_PROTOCOL_FAMILY_IP), 1);
    RTM_IP_ROUTE hit;
    CHECK_EQ(RtmLookupIPDestination(htonl(0x14000101u), &hit), 1);
    CHECK_EQ(hit.RR_RoutingProtocol, 6002);
    printf("threaded: %d routes added one call at a time in %.2f s (%.0f routes/s); "
           "deregistered in %.3f s while %ld lookups ran on another thread "
           "(slowest %.1f us, %ld in all, 0 misses)\n",
           n, add_s, n / add_s, dereg_s, during, l.worst_us, l.done);
    CHECK_EQ(RtmDeregisterClient(cover), NO_ERROR);
}

int main(void) {
    test_layout();
    test_deregistration_removes_the_clients_routes();
    test_every_call();
    test_ipx();
    test_bad_input_is_refused_and_changes_nothing();
    test_a_resource_shortage_is_reported();
    test_a_client_cannot_block_rtm_through_its_event();
    test_handle_slips_are_refused();
    test_lookups_go_on_while_a_big_client_deregisters();
    printf("rtm C API: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
