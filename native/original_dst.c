// The original destination of a connection iptables REDIRECTed to the outbound listener (mesh-init's rules):
// getsockopt(SO_ORIGINAL_DST) on the accepted socket, which Node has no API for. One function,
// originalDst(fd) -> { address, port } | null (null: the connection was not redirected, or conntrack has no entry).
// Built by scripts/build-native.mjs with the C compiler alone (Node-API, no node-gyp).
#define NAPI_VERSION 8
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

// From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>: both 80.
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

static napi_value fail(napi_env env, const char *call, int err) {
  char message[160];
  snprintf(message, sizeof message, "%s: %s", call, strerror(err));
  napi_throw_error(env, "ERR_ORIGINAL_DST", message);
  return NULL;
}

static napi_value original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, &arg, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, arg, &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "originalDst(fd): fd must be a non-negative integer");
    return NULL;
  }
  struct sockaddr_storage local;
  socklen_t len = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &len) != 0) return fail(env, "getsockname", errno);

  struct sockaddr_storage dst;
  memset(&dst, 0, sizeof dst);
  len = sizeof dst;
  int rc;
  if (local.ss_family == AF_INET6 && !IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&local)->sin6_addr)) {
    rc = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &len);
  } else {
    // IPv4, also on a dual-stack socket (v4-mapped): conntrack's entry is the IPv4 one.
    rc = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len);
  }
  napi_value result;
  if (rc != 0) {
    // ENOENT: conntrack has no entry (no NAT here); ENOPROTOOPT: no conntrack for the family.
    if (errno == ENOENT || errno == ENOPROTOOPT) {
      napi_get_null(env, &result);
      return result;
    }
    return fail(env, "getsockopt(SO_ORIGINAL_DST)", errno);
  }
  char text[INET6_ADDRSTRLEN];
  int port;
  if (dst.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&dst;
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    port = ntohs(a->sin6_port);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&dst;
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    port = ntohs(a->sin_port);
  }
  napi_value address, portValue;
  napi_create_object(env, &result);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &address);
  napi_create_int32(env, port, &portValue);
  napi_set_named_property(env, result, "address", address);
  napi_set_named_property(env, result, "port", portValue);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "originalDst", NAPI_AUTO_LENGTH, original_dst, NULL, &fn);
  napi_set_named_property(env, exports, "originalDst", fn);
  return exports;
}
