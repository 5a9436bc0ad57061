package client

// KeepAlivePending reports whether a STUN keep-alive awaits its answer (for tests).
func KeepAlivePending(c *Client) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kaPending
}
