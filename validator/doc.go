// Package validator is playerguard's domain: it turns a player's connect
// request into a decision (allow, kick or unavailable) by asking the Kakao
// Games OpenAPI (POST /service/v5/auth/validation), and serves that decision
// to the game server over HTTP on localhost.
//
// The request path, in order:
//
//   - the request is decoded (JSON body or headers) and checked; a caller
//     mistake is a 400 and never reaches the upstream;
//   - a fresh cached allow answers at once, without allocating (and, if
//     enabled, a cached invalid_token kick answers too);
//   - otherwise concurrent requests for the same key share one upstream
//     call, made through a circuit breaker and a cap on concurrent calls
//     (while the breaker is not closed, only its probe waits on the
//     upstream: nobody joins a probe's call);
//   - the upstream is called through strictTransport, which never lets a
//     connection that got out of step carry another call;
//   - Decide maps the upstream's answer to a Result (the decision table,
//     on a strict reading of the body); an allow is cached, a kick drops
//     every cached allow of its token and of the player the verdict names
//     (never of a bare claim), a failure is logged;
//   - when no verdict could be had, the outage Policy decides: a recent
//     allow served stale, everyone allowed, or unavailable.
//
// Upstream failures never become kicks, and nothing but an upstream allow
// or the configured outage policy becomes an allow. Access tokens, the app
// secret and the admin key never appear in logs, metrics or responses.
//
// A Validator is safe for concurrent use. Its Handler and ErrorHandler plug
// into a fasthttp.Server; its OpsHandler into a net/http server.
package validator
