// Package validator is playerguard's engine: it turns a player's connect
// request into a decision (allow, kick or unavailable) by asking a
// Provider, and serves that decision to the game server over HTTP on
// localhost. It knows no upstream: each provider is a package of its own
// (kakaogames, kakaologin), and cmd/playerguard wires them in.
//
// The request path, in order, the same for every provider:
//
//   - the request is decoded (a JSON body, or the same fields as headers)
//     and checked by the provider (Provider.Check); a caller mistake is a
//     400 and never reaches the upstream;
//   - a fresh cached allow answers at once, without allocating (and, if
//     enabled, a cached invalid_token kick answers too);
//   - otherwise concurrent requests for the same key share one call (a
//     flight), made within the provider's call slots and through its own
//     circuit breaker (while a breaker is not closed, only its probe waits
//     on the upstream: nobody joins a probe's call);
//   - the provider makes the call (HTTPUpstream is the hardened client
//     they share: strictTransport, which never lets a connection that got
//     out of step carry another call, echo checks, scrubbed errors) and
//     decides (its decision table, on a strict reading of the body:
//     JSONReader);
//   - an allow is cached (for at most its Result.MaxAge), a kick drops
//     every cached allow of its token and of the player the verdict names
//     (never of a bare claim);
//   - when no verdict could be had, the outage Policy decides: a recent
//     allow served stale, everyone allowed, or unavailable;
//   - an allow of a request with a sessionId registers a live session
//     (package sessions, wired in live.go), its credential copied and
//     held in memory: it is validated again every round with the cache
//     bypassed, and a kick of its player (a revalidation's, another
//     connect's, another sidecar's through the Fleet, /admin/kick) ends
//     it with a kick event, streamed at /v1/events and posted to the
//     webhook. Only a verdict ends a session early: a revalidation
//     without one leaves it for the next round.
//
// Every provider's answers use the same statuses (200 allow, 403 kick, 503
// unavailable, 400 a malformed request), fields and X-Playerguard-*
// headers, and its metrics carry its name as the provider label. A
// provider with endpoints of its own (Kakao Games' drop-in) is a Router.
//
// Upstream failures never become kicks, and nothing but an upstream allow
// or the configured outage policy becomes an allow. Access tokens and the
// providers' secrets never appear in logs, metrics or responses.
//
// A Validator is safe for concurrent use. Its Handler and ErrorHandler plug
// into a fasthttp.Server (NewServer); its OpsHandler into a net/http server.
package validator
