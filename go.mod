module github.com/fepool/fepool

go 1.26

require (
	github.com/goccy/go-yaml v1.19.2
	github.com/icholy/digest v1.2.0
	github.com/jonboulle/clockwork v0.5.0
)
