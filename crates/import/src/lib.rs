//! CSV import (being built).
