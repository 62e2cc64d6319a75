/*
 * rtm from C: two routing protocols share the table, one hears of the
 * other's changes through its eventfd, and the forwarding path looks up.
 *
 *   cargo build --release -p rtm-capi
 *   cc -Icapi/include capi/examples/example.c -Ltarget/release -lrtm -o example
 *   LD_LIBRARY_PATH=target/release ./example
 */
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "rtm.h"

#define PROTO_IP_RIP 8
#define PROTO_IP_OSPF 13

static RTM_IP_ROUTE route(const char *net, const char *mask, const char *via, DWORD metric) {
    RTM_IP_ROUTE r;
    memset(&r, 0, sizeof r);
    r.RR_Network.N_NetNumber = inet_addr(net);
    r.RR_Network.N_NetMask = inet_addr(mask);
    r.RR_NextHopAddress.N_NetNumber = inet_addr(via);
    r.RR_InterfaceID = 1;
    r.RR_FamilySpecificData.FSD_Type = 4; /* remote */
    r.RR_FamilySpecificData.FSD_Metric = metric;
    SetRouteValid(&r);
    return r;
}

static const char *addr(DWORD a) {
    struct in_addr in = {a};
    return inet_ntoa(in);
}

static void fail(const char *what) {
    char msg[256];
    DWORD size = sizeof msg;
    if (RtmGetLastErrorMessage(msg, &size) != NO_ERROR)
        strcpy(msg, "?");
    fprintf(stderr, "%s failed: error %u: %s\n", what, RtmGetLastError(), msg);
}

int main(void) {
    RtmSetProtocolPriority(PROTO_IP_OSPF, 10); /* lower wins */
    RtmSetProtocolPriority(PROTO_IP_RIP, 120);

    int rip_event = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    HANDLE rip = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, PROTO_IP_RIP, RTM_EVENT_FD(rip_event), 0);
    HANDLE ospf = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, PROTO_IP_OSPF, NULL, 0);
    if (rip == NULL || ospf == NULL) {
        fail("RtmRegisterClient");
        return 1;
    }

    DWORD flags;
    RTM_IP_ROUTE r = route("10.1.0.0", "255.255.0.0", "192.0.2.1", 2);
    if (RtmAddRoute(rip, &r, 180, &flags, NULL, NULL) != NO_ERROR) {
        fail("RtmAddRoute");
        return 1;
    }
    r = route("10.1.0.0", "255.255.0.0", "192.0.2.9", 20);
    RtmAddRoute(ospf, &r, INFINITE, &flags, NULL, NULL);
    printf("OSPF's add: flags %u (RTM_ROUTE_CHANGED = %u)\n", flags, RTM_ROUTE_CHANGED);

    /* RIP's event is readable: a message waits. */
    struct pollfd p = {rip_event, POLLIN, 0};
    if (poll(&p, 1, 1000) == 1) {
        RTM_IP_ROUTE cur, prev;
        DWORD rc;
        do {
            rc = RtmDequeueRouteChangeMessage(rip, &flags, &cur, &prev);
            if (rc == NO_ERROR || rc == ERROR_MORE_MESSAGES)
                printf("RIP hears: flags %u, best now protocol %u via %s\n", flags,
                       cur.RR_RoutingProtocol, addr(cur.RR_NextHopAddress.N_NetNumber));
        } while (rc == ERROR_MORE_MESSAGES);
    }

    RTM_IP_ROUTE hit;
    if (RtmLookupIPDestination(inet_addr("10.1.2.3"), &hit))
        printf("lookup 10.1.2.3: via %s (protocol %u)\n", addr(hit.RR_NextHopAddress.N_NetNumber),
               hit.RR_RoutingProtocol);

    RtmDeregisterClient(ospf); /* its routes go with it */
    if (RtmLookupIPDestination(inet_addr("10.1.2.3"), &hit))
        printf("after OSPF left: via %s (protocol %u)\n", addr(hit.RR_NextHopAddress.N_NetNumber),
               hit.RR_RoutingProtocol);
    printf("networks: %u\n", RtmGetNetworkCount(RTM_PROTOCOL_FAMILY_IP));

    RtmDeregisterClient(rip);
    close(rip_event);
    return hit.RR_RoutingProtocol == PROTO_IP_RIP ? 0 : 1;
}
