package fabric

// Kind says what happened in the fabric.
type Kind int

// Event kinds. Those with a Lync event ID carry it in Event.ID.
const (
	FrontEndInactive            Kind = iota + 1 // 32108
	PrimaryPromoted                             // 32167
	ConferenceDirectoryPromoted                 // 51037
	MCUFactoryChanged                           // 51035
	StorageServicePrimary                       // 32033
	QuorumLoss                                  // 32163
	RoutingGroupsClosed                         // 32189
	ShutdownScheduled                           // 32173
	PoolManagerCannotConnect                    // 32170
	StartupDelayed                              // 32174
	ServicesStopped
	QuorumRegained
	PoolStarted
	PoolStopped
	RoutingGroupLost
	RoutingGroupRestored
	RegistrarReset
)

var kindNames = map[Kind]string{
	FrontEndInactive:            "FrontEndInactive",
	PrimaryPromoted:             "PrimaryPromoted",
	ConferenceDirectoryPromoted: "ConferenceDirectoryPromoted",
	MCUFactoryChanged:           "MCUFactoryChanged",
	StorageServicePrimary:       "StorageServicePrimary",
	QuorumLoss:                  "QuorumLoss",
	RoutingGroupsClosed:         "RoutingGroupsClosed",
	ShutdownScheduled:           "ShutdownScheduled",
	PoolManagerCannotConnect:    "PoolManagerCannotConnect",
	StartupDelayed:              "StartupDelayed",
	ServicesStopped:             "ServicesStopped",
	QuorumRegained:              "QuorumRegained",
	PoolStarted:                 "PoolStarted",
	PoolStopped:                 "PoolStopped",
	RoutingGroupLost:            "RoutingGroupLost",
	RoutingGroupRestored:        "RoutingGroupRestored",
	RegistrarReset:              "RegistrarReset",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "Unknown"
}

// Event is one fabric state change.
type Event struct {
	Kind  Kind
	ID    int // Lync event ID, 0 when Lync has none
	FE    int // Front End index, -1 when none
	RG    int // routing group, -1 when none
	Count int // how many things it concerns, when it aggregates
	Msg   string
}
