// Package connector decides what each LMS account should look like, given the HR facts
// recorded for the person behind it, and converges the LMS to that decision.
//
// The package follows one rule: converge, don't react. An event is a fact, not a command.
// For a worker, the Converger always
//
//  1. recomputes the Wanted state from all of the worker's facts (Want, a pure function),
//  2. reads the account from the LMS (the LMS port),
//  3. runs the actions that close the gap (Plan, a pure function).
//
// Duplicates, redeliveries and out-of-order arrival therefore cannot change the result,
// and a crash between any two steps is healed by converging the worker again.
//
// connector imports only the standard library. Its ports (Store, LMS) are declared here,
// where they are used, and implemented by the store package and the adapters under
// connector/lms.
package connector
