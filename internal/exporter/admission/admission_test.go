package admission

import (
	"errors"
	"sync"
	"testing"
)

func TestClaimGrowsUntilTheBudgetIsHeld(t *testing.T) {
	b := New(100)
	a, c := b.Claim(), b.Claim()
	if err := a.Grow(60); err != nil {
		t.Fatalf("60 of 100: %v", err)
	}
	if err := c.Grow(30); err != nil {
		t.Fatalf("90 of 100: %v", err)
	}
	err := c.Grow(11)
	var ex *ExhaustedError
	if !errors.As(err, &ex) || ex.Limit != 100 || ex.Used != 90 {
		t.Fatalf("101 of 100: %v, want an ExhaustedError at 90 of 100", err)
	}
	if c.Held() != 30 || b.Used() != 90 || b.Refused() != 1 {
		t.Fatalf("a refused claim changed the budget: held %d, used %d, refused %d", c.Held(), b.Used(), b.Refused())
	}
	a.Release()
	if err := c.Grow(11); err != nil {
		t.Fatalf("after the other claim's release: %v", err)
	}
	c.Release()
	if b.Used() != 0 || a.Held() != 0 || c.Held() != 0 {
		t.Fatalf("after every release: used %d, held %d and %d", b.Used(), a.Held(), c.Held())
	}
	a.Release() // twice is harmless
	if b.Used() != 0 {
		t.Fatalf("a second release changed the budget: used %d", b.Used())
	}
}

// A request larger than the whole budget is admitted alone, so that it is not refused forever.
func TestClaimLargerThanTheBudgetIsCappedAtIt(t *testing.T) {
	b := New(100)
	big := b.Claim()
	if err := big.Grow(250); err != nil {
		t.Fatalf("250 of 100 with nothing else in flight: %v", err)
	}
	if big.Held() != 100 || b.Used() != 100 {
		t.Fatalf("held %d, used %d; want both capped at 100", big.Held(), b.Used())
	}
	if err := big.Grow(1); err != nil {
		t.Fatalf("growing a claim that holds the whole budget: %v", err)
	}
	small := b.Claim()
	if err := small.Grow(1); err == nil {
		t.Fatal("a second claim was admitted while another held the whole budget")
	}
	big.Release()
	other := b.Claim()
	if err := other.Grow(20); err != nil {
		t.Fatal(err)
	}
	late := b.Claim()
	if err := late.Grow(250); err == nil {
		t.Fatal("a claim larger than the budget was admitted while another one was in flight")
	}
}

func TestNoBudgetAdmitsEverything(t *testing.T) {
	var b *Budget
	c := b.Claim()
	if err := c.Grow(1 << 40); err != nil {
		t.Fatal(err)
	}
	c.Release()
}

// Concurrent claims never hold more than the budget between them, and every byte comes back.
func TestConcurrentClaimsStayWithinTheBudget(t *testing.T) {
	const limit = 1000
	b := New(limit)
	var (
		wg                sync.WaitGroup
		mu                sync.Mutex
		admitted, largest int64
	)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				c := b.Claim()
				ok := true
				for step := range 4 {
					if c.Grow(int64(10+(g*7+i+step)%90)) != nil {
						ok = false
						break
					}
					if u := b.Used(); u > limit {
						t.Errorf("used %d of %d", u, limit)
					}
				}
				mu.Lock()
				if ok {
					admitted++
				}
				largest = max(largest, c.Held())
				mu.Unlock()
				c.Release()
			}
		}()
	}
	wg.Wait()
	if b.Used() != 0 {
		t.Fatalf("%d bytes still used after every claim was released", b.Used())
	}
	if admitted == 0 {
		t.Fatal("no claim was ever admitted")
	}
	t.Logf("%d of %d claims admitted whole, %d refusals, largest claim %d", admitted, 8*2000, b.Refused(), largest)
}

// Freed wakes a waiter when any claim gives bytes back, and only then.
func TestFreedIsClosedByTheNextRelease(t *testing.T) {
	b := New(10)
	c := b.Claim()
	if err := c.Grow(10); err != nil {
		t.Fatal(err)
	}
	freed := b.Freed()
	select {
	case <-freed:
		t.Fatal("Freed was closed before any release")
	default:
	}
	c.Release()
	select {
	case <-freed:
	default:
		t.Fatal("Freed was not closed by the release")
	}
	if next := b.Freed(); next == freed {
		t.Fatal("a second waiter got the channel that is already closed")
	}
}

func TestShrinkToGivesBackTheRest(t *testing.T) {
	b := New(100)
	c := b.Claim()
	if err := c.Grow(80); err != nil {
		t.Fatal(err)
	}
	freed := b.Freed()
	c.ShrinkTo(30)
	if c.Held() != 30 || b.Used() != 30 {
		t.Fatalf("after ShrinkTo(30): held %d, used %d", c.Held(), b.Used())
	}
	select {
	case <-freed:
	default:
		t.Fatal("ShrinkTo gave bytes back without waking a waiter")
	}
	c.ShrinkTo(50) // growing is not ShrinkTo's job
	if c.Held() != 30 || b.Used() != 30 {
		t.Fatalf("ShrinkTo(50) on 30 changed the claim: held %d, used %d", c.Held(), b.Used())
	}
	c.ShrinkTo(0)
	if c.Held() != 0 || b.Used() != 0 {
		t.Fatalf("after ShrinkTo(0): held %d, used %d", c.Held(), b.Used())
	}
}
