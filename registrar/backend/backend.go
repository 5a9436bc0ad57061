// Package backend is a pool's Back End: its SQL database (embedded SQLite) holding persistent
// user data (contact lists) and the pool's disaster-recovery state. It can be taken down to
// emulate a Back End outage: then persistent changes fail with ErrUnavailable while the Front
// Ends keep registering users. Safe for concurrent use.
package backend

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// ErrUnavailable is returned by persistent changes while the Back End is down.
var ErrUnavailable = errors.New("back end unavailable")

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

	mu        sync.Mutex
	down      bool
	downSince time.Time
}

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
func Open(path string) (*Store, error) {
	if path != ":memory:" {
		if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("back end %s: its directory %s does not exist: create it or change back_end.path", path, filepath.Dir(path))
		}
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
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
	return &Store{db: db, path: path}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Path returns where the database lives.
func (s *Store) Path() string { return s.path }

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

func (s *Store) available() error {
	if up, _ := s.Up(); !up {
		return ErrUnavailable
	}
	return nil
}

// SetContact adds or updates a contact of aor (whose home pool is home).
func (s *Store) SetContact(aor, home string, c Contact) error {
	if err := s.available(); err != nil {
		return err
	}
	_, err := s.db.Exec(`INSERT INTO contacts (aor, home, uri, display_name, groups) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (aor, uri) DO UPDATE SET display_name = excluded.display_name, groups = excluded.groups`,
		aor, home, c.URI, c.DisplayName, c.Groups)
	return err
}

// DeleteContact removes a contact of aor; removing one that is not there is not an error.
func (s *Store) DeleteContact(aor, uri string) error {
	if err := s.available(); err != nil {
		return err
	}
	_, err := s.db.Exec(`DELETE FROM contacts WHERE aor = ? AND uri = ?`, aor, uri)
	return err
}

// Contacts returns aor's contact list, sorted by URI. Reading works while the Back End is
// down (the Front Ends hold a copy); only changes fail.
func (s *Store) Contacts(aor string) ([]Contact, error) {
	rows, err := s.db.Query(`SELECT uri, display_name, groups FROM contacts WHERE aor = ? ORDER BY uri`, aor)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Contact{}
	for rows.Next() {
		var c Contact
		if err := rows.Scan(&c.URI, &c.DisplayName, &c.Groups); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// SyncUsers makes dst hold exactly s's contacts of the users homed on home: the backup
// service's sync before a failover and a failback. Both must be up (else ErrUnavailable). It
// returns the contacts copied.
func (s *Store) SyncUsers(dst *Store, home string) (int, error) {
	if err := s.available(); err != nil {
		return 0, fmt.Errorf("source: %w", err)
	}
	if err := dst.available(); err != nil {
		return 0, fmt.Errorf("destination: %w", err)
	}
	rows, err := s.db.Query(`SELECT aor, uri, display_name, groups FROM contacts WHERE home = ?`, home)
	if err != nil {
		return 0, err
	}
	type row struct{ aor, uri, name, groups string }
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.aor, &r.uri, &r.name, &r.groups); err != nil {
			rows.Close()
			return 0, err
		}
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	tx, err := dst.db.Begin()
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(`DELETE FROM contacts WHERE home = ?`, home); err != nil {
		return 0, err
	}
	for _, r := range all {
		if _, err := tx.Exec(`INSERT INTO contacts (aor, home, uri, display_name, groups) VALUES (?, ?, ?, ?, ?)`, r.aor, home, r.uri, r.name, r.groups); err != nil {
			return 0, err
		}
	}
	return len(all), tx.Commit()
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
	_, err := s.db.Exec(`INSERT INTO dr_state (pool, state, since, detail) VALUES (?, ?, ?, ?)
		ON CONFLICT (pool) DO UPDATE SET state = excluded.state, since = excluded.since, detail = excluded.detail`,
		d.Pool, d.State, d.Since.UnixNano(), d.Detail)
	return err
}

// LoadDR returns a pool's recorded state; ok is false when none was recorded.
func (s *Store) LoadDR(pool string) (d DRState, ok bool, err error) {
	var since int64
	err = s.db.QueryRow(`SELECT pool, state, since, detail FROM dr_state WHERE pool = ?`, pool).Scan(&d.Pool, &d.State, &since, &d.Detail)
	if errors.Is(err, sql.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, err
	}
	d.Since = time.Unix(0, since)
	return d, true, nil
}
