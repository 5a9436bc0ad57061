// Package backend is a pool's Back End: its SQL database (embedded SQLite) holding persistent
// user data (contact lists) and the pool's disaster-recovery state. It can be taken down to
// emulate a Back End outage: then persistent changes fail with ErrUnavailable while the Front
// Ends keep registering users. A database that cannot take a change at run time (locked by
// another connection, read-only, full, failing) fails it with ErrUnavailable too, within a
// bounded time (BusyTimeout, OpTimeout), so that no caller waits on it for long.
//
// Concurrency: a Store is safe for concurrent use. It holds one database connection (SQLite
// has one writer), so operations run one at a time; mu guards only the up/down flag and is
// never held during a database call.
package backend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"modernc.org/sqlite" // the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrUnavailable is returned by operations the Back End cannot take now: it is down (an
// emulated outage), shut, or its database is locked, read-only, full or failing. Retrying later
// may succeed; the SIP edge answers 503.
var ErrUnavailable = errors.New("back end unavailable")

// BusyTimeout is how long one statement waits for a lock another connection holds (SQLite's
// busy timeout), and OpTimeout how long one operation waits in all, its turn on the connection
// included. Our choice: a write here takes microseconds, so a database still locked after a
// second is an outage as a client sees it (a SIP client over UDP retransmits after 0.5 s and
// again after 1.5 s, RFC 3261 Timer E), not contention worth waiting out. It was 5 s per
// statement, which held SERVICE requests, and the admin API behind them, for up to 13 s.
const (
	BusyTimeout = time.Second
	OpTimeout   = 2 * BusyTimeout
)

// Error is a failed Back End operation. It names the Back End, so that the SIP edge can say
// which one failed (ms-diagnostics), and matches ErrUnavailable (errors.Is) when the Back End
// could not take the operation now, as opposed to a fault of the emulator's own SQL.
type Error struct {
	BackEnd string // the Back End's name (Named; its path by default)
	Op      string // what failed: "set contact", "sync users"...
	Reason  string // why, as a predicate: "is down", "is locked by another connection"...
	Err     error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (%s): %v", e.Summary(), e.Op, e.Err)
}

// Summary says which Back End failed and why, for a user: "Back End of pool-a.contoso.com is
// read-only".
func (e *Error) Summary() string { return "Back End of " + e.BackEnd + " " + e.Reason }

func (e *Error) Unwrap() error { return e.Err }

// classify says why a database call failed and whether the Back End is unavailable (the
// database cannot take it now: the SIP edge answers 503 with Retry-After) rather than wrong (a
// fault of our own SQL or schema: 500, logged as an error). Our choice: a client can do nothing
// about either, but a retry helps once a lock is released or a disk freed and costs nothing
// otherwise, while our own SQL failing will not mend itself and must reach the operator.
func classify(err error) (reason string, unavailable bool) {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return "is busy: no answer within " + OpTimeout.String(), true
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return "failed", false
	}
	switch se.Code() & 0xff { // the primary result code; the extended one is in the high bits
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return "is locked by another connection", true
	case sqlite3.SQLITE_READONLY:
		return "is read-only", true
	case sqlite3.SQLITE_FULL:
		return "is full", true
	case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_PROTOCOL:
		return "cannot write its storage (I/O error: read-only or failing)", true
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return "is corrupt", true
	case sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_INTERRUPT:
		return "is busy", true
	}
	return "failed", false
}

// Contact is one entry of a user's contact list.
type Contact struct {
	URI         string `json:"uri"`
	DisplayName string `json:"displayName,omitempty"`
	Groups      string `json:"groups,omitempty"`
}

// Store is one pool's Back End.
type Store struct {
	db   *sql.DB
	path string
	name string

	mu        sync.Mutex
	down      bool
	downSince time.Time
	closed    bool
}

// Option sets up a Store.
type Option func(*Store)

// Named gives the Back End the name its errors carry (its pool's FQDN).
func Named(name string) Option { return func(s *Store) { s.name = name } }

const schema = `
CREATE TABLE IF NOT EXISTS contacts (
	aor          TEXT NOT NULL,
	home         TEXT NOT NULL,
	uri          TEXT NOT NULL,
	display_name TEXT NOT NULL DEFAULT '',
	groups       TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (aor, uri)
);
CREATE INDEX IF NOT EXISTS contacts_home ON contacts (home);
CREATE TABLE IF NOT EXISTS dr_state (
	pool   TEXT PRIMARY KEY,
	state  TEXT NOT NULL,
	since  INTEGER NOT NULL,
	detail TEXT NOT NULL DEFAULT ''
);`

// Open opens (creating when needed) the Back End at path, or an in-memory one for ":memory:".
func Open(path string, opts ...Option) (*Store, error) {
	if path != ":memory:" {
		if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("back end %s: its directory %s does not exist: create it or change back_end.path", path, filepath.Dir(path))
		}
	}
	dsn := fmt.Sprintf("file:%s?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)", path, BusyTimeout.Milliseconds())
	if path == ":memory:" {
		dsn = "file::memory:"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("back end %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer; and ":memory:" is one database per connection
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("back end %s: %w", path, err)
	}
	st := &Store{db: db, path: path, name: path}
	for _, o := range opts {
		o(st)
	}
	return st, nil
}

// Close closes the database; later operations fail with ErrUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return s.db.Close()
}

// Path returns where the database lives.
func (s *Store) Path() string { return s.path }

// Name returns the name its errors carry.
func (s *Store) Name() string { return s.name }

// SetUp takes the Back End down or brings it back.
func (s *Store) SetUp(up bool, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down == !up {
		return
	}
	s.down = !up
	s.downSince = time.Time{}
	if !up {
		s.downSince = now
	}
}

// Up reports whether the Back End is up, and since when it is down otherwise.
func (s *Store) Up() (bool, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.down, s.downSince
}

// available refuses changes while the Back End is down (emulated) and anything once closed.
func (s *Store) available(op string, change bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return &Error{BackEnd: s.name, Op: op, Reason: "is shut down", Err: ErrUnavailable}
	case s.down && change:
		return &Error{BackEnd: s.name, Op: op, Reason: "is down", Err: ErrUnavailable}
	}
	return nil
}

// fail wraps a database error: an Error naming the Back End, matching ErrUnavailable when the
// database could not take the operation now.
func (s *Store) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	reason, unavailable := classify(err)
	if unavailable {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return &Error{BackEnd: s.name, Op: op, Reason: reason, Err: err}
}

// exec runs one statement within OpTimeout.
func (s *Store) exec(op string, change bool, query string, args ...any) error {
	if err := s.available(op, change); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), OpTimeout)
	defer cancel()
	_, err := s.db.ExecContext(ctx, query, args...)
	return s.fail(op, err)
}

// SetContact adds or updates a contact of aor (whose home pool is home).
func (s *Store) SetContact(aor, home string, c Contact) error {
	return s.exec("set contact", true, `INSERT INTO contacts (aor, home, uri, display_name, groups) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (aor, uri) DO UPDATE SET display_name = excluded.display_name, groups = excluded.groups`,
		aor, home, c.URI, c.DisplayName, c.Groups)
}

// DeleteContact removes a contact of aor; removing one that is not there is not an error.
func (s *Store) DeleteContact(aor, uri string) error {
	return s.exec("delete contact", true, `DELETE FROM contacts WHERE aor = ? AND uri = ?`, aor, uri)
}

// Contacts returns aor's contact list, sorted by URI. Reading works while the Back End is
// down (the Front Ends hold a copy); only changes fail.
func (s *Store) Contacts(aor string) ([]Contact, error) {
	const op = "read contacts"
	if err := s.available(op, false); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), OpTimeout)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, `SELECT uri, display_name, groups FROM contacts WHERE aor = ? ORDER BY uri`, aor)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	out := []Contact{}
	for rows.Next() {
		var c Contact
		if err := rows.Scan(&c.URI, &c.DisplayName, &c.Groups); err != nil {
			return nil, s.fail(op, err)
		}
		out = append(out, c)
	}
	return out, s.fail(op, rows.Err())
}

// SyncUsers makes dst hold exactly s's contacts of the users homed on home: the backup
// service's sync before a failover and a failback. Both must be up (else ErrUnavailable). It
// returns the contacts copied. A bulk copy has no overall deadline; each lock it waits for is
// bounded by BusyTimeout.
func (s *Store) SyncUsers(dst *Store, home string) (int, error) {
	const op = "sync users"
	if err := s.available(op, true); err != nil {
		return 0, fmt.Errorf("source: %w", err)
	}
	if err := dst.available(op, true); err != nil {
		return 0, fmt.Errorf("destination: %w", err)
	}
	type row struct{ aor, uri, name, groups string }
	all, err := func() ([]row, error) {
		rows, err := s.db.Query(`SELECT aor, uri, display_name, groups FROM contacts WHERE home = ?`, home)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var all []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.aor, &r.uri, &r.name, &r.groups); err != nil {
				return nil, err
			}
			all = append(all, r)
		}
		return all, rows.Err()
	}()
	if err != nil {
		return 0, fmt.Errorf("source: %w", s.fail(op, err))
	}
	err = func() error {
		tx, err := dst.db.Begin()
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
		if _, err := tx.Exec(`DELETE FROM contacts WHERE home = ?`, home); err != nil {
			return err
		}
		for _, r := range all {
			if _, err := tx.Exec(`INSERT INTO contacts (aor, home, uri, display_name, groups) VALUES (?, ?, ?, ?, ?)`, r.aor, home, r.uri, r.name, r.groups); err != nil {
				return err
			}
		}
		return tx.Commit()
	}()
	if err != nil {
		return 0, fmt.Errorf("destination: %w", dst.fail(op, err))
	}
	return len(all), nil
}

// DRState is a pool's persisted disaster-recovery state.
type DRState struct {
	Pool   string
	State  string
	Since  time.Time
	Detail string
}

// SaveDR records a pool's disaster-recovery state (whatever the emulated outage: it is the
// emulator's own bookkeeping, not user data).
func (s *Store) SaveDR(d DRState) error {
	return s.exec("record the disaster-recovery state", false, `INSERT INTO dr_state (pool, state, since, detail) VALUES (?, ?, ?, ?)
		ON CONFLICT (pool) DO UPDATE SET state = excluded.state, since = excluded.since, detail = excluded.detail`,
		d.Pool, d.State, d.Since.UnixNano(), d.Detail)
}

// LoadDR returns a pool's recorded state; ok is false when none was recorded.
func (s *Store) LoadDR(pool string) (d DRState, ok bool, err error) {
	const op = "read the disaster-recovery state"
	if err := s.available(op, false); err != nil {
		return d, false, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), OpTimeout)
	defer cancel()
	var since int64
	err = s.db.QueryRowContext(ctx, `SELECT pool, state, since, detail FROM dr_state WHERE pool = ?`, pool).Scan(&d.Pool, &d.State, &since, &d.Detail)
	if errors.Is(err, sql.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, s.fail(op, err)
	}
	d.Since = time.Unix(0, since)
	return d, true, nil
}
