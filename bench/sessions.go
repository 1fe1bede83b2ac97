package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"playerguard/sessions"
	"playerguard/validator/kakaogames/kakaogamestest"
)

// runSessions: o.sessions players connect with a sessionId each and stay
// connected while playerguard validates every session again once a round
// (-revalidate-every, at most -revalidate-max-rps); one SSE client reads
// GET /v1/events. After a round, every twentieth player is sanctioned
// upstream (464) at once. Each of their sessions must be kicked, its event
// reaching the SSE client exactly once, and no other session; the delay
// is from the fake's switch to the event's arrival.
//
// The defaults, a 20s round at most 600/s over 10,000 sessions against
// the 30 ms upstream the other scenarios use, make a round short enough
// to run twice in about a minute: a round needs up to 556/s, which
// revalidations side by side (about 17 under way at 30 ms) reach under
// the cap.
func runSessions(e *env, r *Report) error {
	o := e.o
	lat := o.latencyOr(30 * time.Millisecond)
	round := o.revalEvery
	fake, players, pg, err := e.startAllowed("sessions", o.sessions, lat,
		"-max-sessions", fmt.Sprint(2*o.sessions),
		"-revalidate-every", round.String(),
		"-revalidate-max-rps", fmt.Sprint(o.revalMaxRPS))
	if err != nil {
		return err
	}
	defer fake.Close()
	defer pg.stop(5 * time.Second)
	up := fake.Config()
	for i := range players {
		players[i].session = fmt.Sprintf("bench-session-%06d", i)
	}
	need := float64(len(players)) / (0.9 * round.Seconds()) // a session is due again 0.9 to 1 round after its last
	r.setup("%s live sessions (POST /v1/validate with a sessionId each, distinct tokens and players), fake Kakao Games upstream latency %v",
		fmtInt(int64(len(players))), lat)
	r.setup("playerguard %s: a round of %s sessions needs up to %.0f revalidations/s, under the cap; playerguard's defaults (10m, 5/s) would take %.0f minutes a round for these sessions",
		strings.Join(pg.flags, " "), fmtInt(int64(len(players))), need, float64(len(players))/5/60)
	r.setup("one SSE client on GET /v1/events; after one round every twentieth player (5%%) is answered 464 (sanction) at once; then at least a round more")

	stream, err := openSSE("http://" + pg.api + "/v1/events")
	if err != nil {
		return err
	}
	defer stream.close()

	const workers = 32
	c := newHClient(pg.api, modeV1, workers, up)
	defer c.close()
	u0 := snapshot(pg)
	start := time.Now()
	replies, lats, errs := validateAll(c, players, workers)
	regSecs := time.Since(start).Seconds()
	u1 := snapshot(pg)
	var bad int64
	var firstBad string
	for i, rep := range replies {
		if errs[i] != nil || rep.status != 200 || rep.decision != "allow" {
			bad++
			firstBad = cmpOrStr(firstBad, fmt.Sprintf("session %s: %d %s/%s (%v)", players[i].session, rep.status, rep.decision, rep.reason, errs[i]))
		}
	}
	d := distOf(lats)
	r.Rows = append(r.Rows, Row{Name: "register (POST /v1/validate with sessionId)", Requests: int64(len(players)), RPS: float64(len(players)) / regSecs,
		P50us: d.P50, P90us: d.P90, P99us: d.P99, MaxUs: d.Max, Errors: bad,
		CPUSeconds: f64(u1.cpu - u0.cpu), CPUusPerReq: f64((u1.cpu - u0.cpu) / float64(len(players)) * 1e6)})
	r.check(kindCorrectness, "every registration a 200 allow", fmt.Sprint(len(players)), bad == 0,
		"%d of %d%s", len(players)-int(bad), len(players), badSuffix(bad, firstBad))
	m, err := pg.metrics()
	if err != nil {
		return err
	}
	held, clients := m.sum("playerguard_sessions", `provider="kakao-games"`), m.sum("playerguard_sse_clients")
	r.check(kindCorrectness, "live sessions held (playerguard_sessions), SSE clients", fmt.Sprintf("%d, 1", len(players)),
		int(held) == len(players) && clients == 1, "%.0f, %.0f", held, clients)

	// Revalidation alone for a round, then the wave, then until every
	// kick has arrived (or two rounds) and at least a round has passed.
	pace := Table{Title: "revalidation (upstream calls: the fake's counter; CPU: playerguard's, from /proc)",
		Header: []string{"phase", "seconds", "upstream calls", "calls/min", "CPU s", "of one core", "CPU µs/call"}}
	phase := func(name string, f func()) int64 {
		c0, u0, t0 := fake.Calls(), snapshot(pg), time.Now()
		f()
		calls, cpu, secs := fake.Calls()-c0, snapshot(pg).cpu-u0.cpu, time.Since(t0).Seconds()
		pace.Rows = append(pace.Rows, []string{name, fmt.Sprintf("%.1f", secs), fmtInt(calls), fmtInt(int64(float64(calls) / secs * 60)),
			fmt.Sprintf("%.2f", cpu), fmt.Sprintf("%.1f%%", cpu/secs*100), fmt.Sprintf("%.0f", cpu/float64(max(calls, 1))*1e6)})
		return calls
	}
	calls := phase("the round before the wave", func() { time.Sleep(round) })
	r.check(kindTarget, "every session asked within a round (upstream calls in the round before the wave)", fmt.Sprintf(">= %d", len(players)),
		calls >= int64(len(players)), "%d", calls)

	switched := map[string]time.Time{} // sessionId -> when the fake started answering 464
	want := map[string]player{}
	var wave time.Time
	phase("from the wave until every kick (at least a round)", func() {
		wave = time.Now()
		for i := 0; i < len(players); i += 20 {
			p := players[i]
			fake.Set(p.token, kakaogamestest.Sanction(up.AppID, p.id))
			switched[p.session] = time.Now()
			want[p.session] = p
		}
		deadline := wave.Add(2*round + 5*time.Second)
		for time.Now().Before(deadline) && (stream.kicks(want) < len(want) || time.Since(wave) < round+2*time.Second) {
			time.Sleep(50 * time.Millisecond)
		}
	})

	events, streamErr := stream.snapshot()
	seen := map[string]int{}
	var delays []time.Duration
	var others, wrong int64
	var firstOther, firstWrong string
	var lastID uint64
	for _, ev := range events {
		k := ev.kick
		p, ok := want[k.SessionID]
		if !ok {
			others++
			firstOther = cmpOrStr(firstOther, fmt.Sprintf("%s (player %s, %s/%s)", k.SessionID, k.PlayerID, k.Source, k.Reason))
			continue
		}
		if seen[k.SessionID]++; seen[k.SessionID] == 1 {
			delays = append(delays, ev.at.Sub(switched[k.SessionID]))
		}
		if ev.typ != "kick" || fmt.Sprint(k.ID) != ev.id || k.ID <= lastID || k.PlayerID != p.id || k.Provider != "kakao-games" || k.Source != "revalidation" || k.Reason != "sanction" {
			wrong++
			firstWrong = cmpOrStr(firstWrong, fmt.Sprintf("event %s %s: %s", ev.id, ev.typ, ev.data))
		}
		lastID = max(lastID, k.ID)
	}
	var dup int64
	for _, n := range seen {
		dup += int64(n - 1)
	}
	r.Tables = append(r.Tables, pace)
	kd := distOf(delays)
	r.Rows = append(r.Rows, Row{Name: "kick delay (464 at the fake -> event at the SSE client)", Requests: int64(kd.N),
		P50us: kd.P50, P90us: kd.P90, P99us: kd.P99, MaxUs: kd.Max, Errors: int64(len(want)-len(seen)) + dup + others + wrong})
	r.check(kindCorrectness, "every sanctioned session's kick event reached the SSE client", fmt.Sprint(len(want)),
		len(seen) == len(want), "%d of %d within %v%s", len(seen), len(want), 2*round+5*time.Second, errSuffix(streamErr))
	r.check(kindCorrectness, "each exactly once", "0 duplicates", dup == 0, "%d", dup)
	r.check(kindCorrectness, "no other session kicked", "0", others == 0, "%d%s", others, badSuffix(others, firstOther))
	r.check(kindCorrectness, "each event a kick with its id, the player, kakao-games, revalidation, sanction", "0 wrong", wrong == 0,
		"%d%s", wrong, badSuffix(wrong, firstWrong))
	r.check(kindTarget, "every kick within one round of its switch (and a second for the call and the stream)", "max <= "+(round+time.Second).String(),
		kd.N > 0 && time.Duration(kd.Max*float64(time.Microsecond)) <= round+time.Second, "p50 %s, p99 %s, max %s", fmtUs(kd.P50), fmtUs(kd.P99), fmtUs(kd.Max))

	m2, err := pg.metrics()
	if err != nil {
		return err
	}
	held = m2.sum("playerguard_sessions", `provider="kakao-games"`)
	kicks, unknown := m2.sum("playerguard_revalidations_total", `outcome="kick"`), m2.sum("playerguard_revalidations_total", `outcome="unknown"`)
	r.check(kindCorrectness, "live sessions left; revalidations kick, unknown (/metrics)", fmt.Sprintf("%d; %d, 0", len(players)-len(want), len(want)),
		int(held) == len(players)-len(want) && int(kicks) == len(want) && unknown == 0, "%.0f; %.0f, %.0f", held, kicks, unknown)
	r.note("upstream calls per minute the rounds ask for: %s (%s sessions, each due again 0.9 to 1 round of %v after its last)",
		fmtInt(int64(float64(len(players))/(0.95*round.Minutes()))), fmtInt(int64(len(players))), round)
	return nil
}

// kickEvent is a kick event's data as the game server reads it.
type kickEvent = sessions.Event

// sseEvent is one event of the stream and when it arrived.
type sseEvent struct {
	id, typ, data string
	kick          kickEvent
	at            time.Time
}

// sseClient reads a Server-Sent Events stream in the background, as a
// game server would, recording every event with its arrival time.
type sseClient struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	events []sseEvent
	ids    map[string]bool // sessionIds kicked
	err    error           // why the stream ended early
}

// openSSE connects and returns once the stream's first comment arrived
// (from then on no event is missed).
func openSSE(url string) (*sseClient, error) {
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultTransport.RoundTrip(req) // no timeout: the stream lasts the scenario
	if err != nil {
		cancel()
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	br := bufio.NewReader(resp.Body)
	if first, err := br.ReadString('\n'); resp.StatusCode != http.StatusOK || err != nil || !strings.HasPrefix(first, ":") {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET %s: %s, first line %q (%v)", url, resp.Status, first, err)
	}
	s := &sseClient{cancel: cancel, done: make(chan struct{}), ids: map[string]bool{}}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		var ev sseEvent
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				if ctx.Err() == nil {
					s.mu.Lock()
					s.err = fmt.Errorf("the stream ended: %w", err)
					s.mu.Unlock()
				}
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch k, v, _ := strings.Cut(line, ": "); {
			case line == "":
				if ev.typ == "" && ev.data == "" {
					continue // after a comment
				}
				ev.at = time.Now()
				json.Unmarshal([]byte(ev.data), &ev.kick)
				s.mu.Lock()
				s.events = append(s.events, ev)
				s.ids[ev.kick.SessionID] = true
				s.mu.Unlock()
				ev = sseEvent{}
			case k == "id":
				ev.id = v
			case k == "event":
				ev.typ = v
			case k == "data":
				ev.data = v
			}
		}
	}()
	return s, nil
}

// kicks counts the sessions of want kicked so far.
func (s *sseClient) kicks(want map[string]player) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id := range want {
		if s.ids[id] {
			n++
		}
	}
	return n
}

func (s *sseClient) snapshot() ([]sseEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sseEvent(nil), s.events...), s.err
}

func (s *sseClient) close() {
	s.cancel()
	<-s.done
}
