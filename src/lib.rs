//! dlc
