/*
 * rtm from C in one page: the crate documentation's example and the
 * README's, compiled and run by CI (exit status 0 when every step did
 * what its comment says).
 *
 *   cargo build --release -p rtm-capi
 *   cc -Icapi/include capi/examples/quickstart.c -Ltarget/release -lrtm -o quickstart
 *   LD_LIBRARY_PATH=target/release ./quickstart
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "rtm.h"

static int failed(const char *what, DWORD rc) {
    char msg[256];
    DWORD size = sizeof msg;
    if (RtmGetLastErrorMessage(msg, &size) != NO_ERROR)
        strcpy(msg, "?");
    fprintf(stderr, "%s: error %u: %s\n", what, rc, msg);
    return 1;
}

int main(void) {
    int ev = eventfd(0, EFD_NONBLOCK);
    HANDLE rip = RtmRegisterClient(RTM_PROTOCOL_FAMILY_IP, 8, RTM_EVENT_FD(ev), 0);
    if (rip == NULL)
        return failed("RtmRegisterClient", RtmGetLastError());
    RTM_IP_ROUTE r;
    memset(&r, 0, sizeof r);
    r.RR_Network.N_NetNumber = inet_addr("10.1.0.0");
    r.RR_Network.N_NetMask = inet_addr("255.255.0.0");
    r.RR_NextHopAddress.N_NetNumber = inet_addr("192.0.2.1");
    r.RR_FamilySpecificData.FSD_Type = 4; /* remote: through a gateway (3: direct) */
    SetRouteValid(&r);
    DWORD flags;
    DWORD rc = RtmAddRoute(rip, &r, INFINITE, &flags, NULL, NULL);
    if (rc != NO_ERROR || flags != RTM_ROUTE_ADDED)
        return failed("RtmAddRoute", rc); /* RtmGetLastErrorMessage says why */

    /* The forwarding path: a longest-prefix match that never waits. */
    RTM_IP_ROUTE best;
    if (!RtmLookupIPDestination(inet_addr("10.1.2.3"), &best))
        return failed("RtmLookupIPDestination", RtmGetLastError());
    struct in_addr via = {best.RR_NextHopAddress.N_NetNumber};
    printf("10.1.2.3 via %s\n", inet_ntoa(via));

    /* Disabled routes do not forward; enabled again, they do. */
    rc = RtmBlockSetRouteEnable(rip, RTM_ONLY_THIS_NETWORK, &r, FALSE);
    if (rc != NO_ERROR || RtmLookupIPDestination(inet_addr("10.1.2.3"), &best))
        return failed("RtmBlockSetRouteEnable(FALSE)", rc);
    rc = RtmBlockSetRouteEnable(rip, RTM_ONLY_THIS_NETWORK, &r, TRUE);
    if (rc != NO_ERROR || !RtmLookupIPDestination(inet_addr("10.1.2.3"), &best))
        return failed("RtmBlockSetRouteEnable(TRUE)", rc);

    rc = RtmDeregisterClient(rip);
    if (rc != NO_ERROR)
        return failed("RtmDeregisterClient", rc);
    close(ev);
    puts("quickstart: every step did what it says");
    return 0;
}
