//! Unit tests of the filter parser, printer and evaluator.

use super::*;
