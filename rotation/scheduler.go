package rotation

import (
	"container/heap"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Renewer renews the credential known by key and returns its new validity.
type Renewer interface {
	Renew(ctx context.Context, key string) (Validity, error)
}

// RenewFunc adapts a function to Renewer.
type RenewFunc func(ctx context.Context, key string) (Validity, error)

// Renew calls f.
func (f RenewFunc) Renew(ctx context.Context, key string) (Validity, error) { return f(ctx, key) }

// Config configures a Scheduler.
type Config struct {
	Renewer Renewer
	Policy  Policy
	Backoff Backoff
	// Workers bounds concurrent renewals; 0 means 4.
	Workers int
	// Clock defaults to the real clock.
	Clock clock.Clock
	// Rand returns uniform numbers in [0,1); defaults to math/rand/v2.
	Rand func() float64
	// OnFailure, if set, is told about every failed renewal and when the
	// next attempt is due.
	OnFailure func(key string, attempt int, next time.Time, err error)
}

// Scheduler renews tracked keys when their Policy says so.
type Scheduler struct {
	cfg  Config
	wake chan struct{}

	mu       sync.Mutex
	items    map[string]*item
	queue    queue
	inflight int
}

type item struct {
	key      string
	validity Validity
	due      time.Time
	attempt  int  // consecutive failures
	running  bool // a renewal is in flight
	again    bool // forced while running
	index    int  // in queue; -1 when not queued
}

// New returns a Scheduler; call Run to start it.
func New(cfg Config) *Scheduler {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	return &Scheduler{cfg: cfg, wake: make(chan struct{}, 1), items: map[string]*item{}}
}

// Track starts (or restarts) the renewal schedule of key, whose current
// credential is valid for v.
func (s *Scheduler) Track(key string, v Validity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[key]
	if !ok {
		it = &item{key: key, index: -1}
		s.items[key] = it
	}
	it.validity, it.attempt = v, 0
	s.setDue(it, s.cfg.Policy.RenewAt(v, s.cfg.Rand()))
}

// Untrack stops renewing key. A renewal already in flight completes, but its
// result does not reschedule the key.
func (s *Scheduler) Untrack(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[key]
	if !ok {
		return
	}
	if it.index >= 0 {
		heap.Remove(&s.queue, it.index)
	}
	delete(s.items, key)
}

// Force renews the given keys now, or all tracked keys if none are given.
// Unknown keys are ignored; the number of keys scheduled is returned.
func (s *Scheduler) Force(keys ...string) int { return s.Spread(0, keys...) }

// Spread is Force paced over window: the keys are taken most urgent first
// (earliest expiry, then key) and the i-th of n is renewed SpreadDelay
// after now, with one phase drawn from Rand for the whole call, so that a
// re-issue of every key after a CA change reaches the CA evenly over the
// window, not in one burst, and no credential waits past half its
// remaining life. A key already due earlier keeps its due time; a key
// being renewed is renewed once more as soon as that renewal returns.
// window <= 0 renews every key now.
func (s *Scheduler) Spread(window time.Duration, keys ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var its []*item
	if len(keys) == 0 {
		for _, it := range s.items {
			its = append(its, it)
		}
	}
	for _, k := range keys {
		if it, ok := s.items[k]; ok {
			its = append(its, it)
		}
	}
	s.spreadLocked(its, window)
	return len(its)
}

// spreadLocked makes its due over window from now, most urgent first (see
// Spread); s.mu must be held.
func (s *Scheduler) spreadLocked(its []*item, window time.Duration) {
	slices.SortFunc(its, func(a, b *item) int {
		if c := a.validity.NotAfter.Compare(b.validity.NotAfter); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	now := s.cfg.Clock.Now()
	phase := 0.0
	if window > 0 {
		phase = s.cfg.Rand()
	}
	for i, it := range its {
		if it.running {
			it.again = true
			continue
		}
		at := now.Add(SpreadDelay(window, it.validity.NotAfter.Sub(now), i, len(its), phase))
		if it.index >= 0 && it.due.Before(at) {
			at = it.due
		}
		s.setDue(it, at)
	}
}

// RetryFailed renews every key whose last renewal failed, paced each
// apart, and returns how many. Call it when the cause of the failures is
// known to be gone (the CA answered again): each failed key would otherwise
// wait out its own backoff, up to Backoff.Max, with its credential possibly
// already expired. They are spread as Spread spreads them, over n × each
// from a random phase, most urgent first, none past half its credential's
// remaining life and one with little left at once: an outage that ends
// (a Vault leader elected) ends for every agent in the same second, and
// their backlogs sent at once would land on the CA together, on top of
// the renewals falling due anyway. each <= 0 renews them all now. A key
// whose retry was already due earlier keeps that time.
func (s *Scheduler) RetryFailed(each time.Duration) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock.Now()
	var its []*item
	for _, it := range s.items {
		if it.attempt > 0 && !it.running && it.due.After(now) {
			its = append(its, it)
		}
	}
	s.spreadLocked(its, each*time.Duration(len(its)))
	return len(its)
}

// Due reports when key is next renewed.
func (s *Scheduler) Due(key string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[key]
	if !ok {
		return time.Time{}, false
	}
	return it.due, true
}

// Run renews keys as they come due until ctx ends, then waits for the
// renewals in flight to return.
func (s *Scheduler) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := s.cfg.Clock.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next, ok := s.dispatch(ctx, &wg)
		StopTimer(timer)
		var fire <-chan time.Time
		if ok {
			// Armed for the instant, not for a wait from when dispatch
			// looked: see ArmAt.
			if !ArmAt(s.cfg.Clock, timer, next) {
				continue
			}
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-fire:
		}
	}
}

// dispatch starts every due renewal the worker bound allows and returns when
// the next one is due, or false if there is nothing to wait for.
func (s *Scheduler) dispatch(ctx context.Context, wg *sync.WaitGroup) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock.Now()
	for s.inflight < s.cfg.Workers && s.queue.Len() > 0 && !s.queue[0].due.After(now) {
		it := heap.Pop(&s.queue).(*item)
		it.running = true
		s.inflight++
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.renew(ctx, it)
		}()
	}
	if s.inflight >= s.cfg.Workers || s.queue.Len() == 0 {
		return time.Time{}, false
	}
	return s.queue[0].due, true
}

func (s *Scheduler) renew(ctx context.Context, it *item) {
	v, err := s.cfg.Renewer.Renew(ctx, it.key)
	if err == nil && !v.NotAfter.After(v.NotBefore) {
		err = fmt.Errorf("rotation: renewer returned an empty validity for %q", it.key)
	}

	s.mu.Lock()
	s.inflight--
	it.running = false
	tracked := s.items[it.key] == it
	var failed func()
	switch {
	case !tracked:
	case err != nil:
		it.attempt++
		now := s.cfg.Clock.Now()
		next := now.Add(s.cfg.Backoff.Delay(it.attempt, it.validity.NotAfter.Sub(now), s.cfg.Rand()))
		if it.again {
			// Forced while this renewal was in flight (a re-issue under a
			// new CA): that renewal is still owed, now, not after the
			// failure's backoff; if it fails too, the backoff holds.
			it.again, next = false, now
		}
		if ctx.Err() == nil {
			s.setDue(it, next)
		}
		if s.cfg.OnFailure != nil {
			attempt := it.attempt
			failed = func() { s.cfg.OnFailure(it.key, attempt, next, err) }
		}
	case it.again:
		it.validity, it.attempt, it.again = v, 0, false
		s.setDue(it, s.cfg.Clock.Now())
	default:
		it.validity, it.attempt = v, 0
		s.setDue(it, s.cfg.Policy.RenewAt(v, s.cfg.Rand()))
	}
	s.mu.Unlock()
	if failed != nil {
		failed()
	}
	s.poke()
}

// setDue (re)queues it at due; s.mu must be held.
func (s *Scheduler) setDue(it *item, due time.Time) {
	it.due = due
	switch {
	case it.running:
		// Requeued when the renewal in flight returns.
	case it.index >= 0:
		heap.Fix(&s.queue, it.index)
	default:
		heap.Push(&s.queue, it)
	}
	s.poke()
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// queue is a min-heap of items by due time, and among items due at the
// same instant by expiry: after an outage RetryFailed makes every failed
// key due now, and the one whose credential runs out first must go first.
type queue []*item

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].validity.NotAfter.Before(q[j].validity.NotAfter)
}
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *queue) Push(x any) {
	it := x.(*item)
	it.index = len(*q)
	*q = append(*q, it)
}
func (q *queue) Pop() any {
	old := *q
	it := old[len(old)-1]
	old[len(old)-1] = nil
	it.index = -1
	*q = old[:len(old)-1]
	return it
}
