//! Upload and download as one parameter, so nothing is written twice per direction.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which way traffic flows, seen from the throttled process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Sent by the process (egress).
    Up,
    /// Received by the process (ingress).
    Down,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::Up, Direction::Down];

    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One value per direction; serialises as `{"up": …, "down": …}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerDirection<T> {
    pub up: T,
    pub down: T,
}

impl<T> PerDirection<T> {
    pub fn from_fn(mut f: impl FnMut(Direction) -> T) -> Self {
        PerDirection {
            up: f(Direction::Up),
            down: f(Direction::Down),
        }
    }

    pub const fn get(&self, direction: Direction) -> &T {
        match direction {
            Direction::Up => &self.up,
            Direction::Down => &self.down,
        }
    }

    pub const fn get_mut(&mut self, direction: Direction) -> &mut T {
        match direction {
            Direction::Up => &mut self.up,
            Direction::Down => &mut self.down,
        }
    }

    pub fn map<U>(&self, mut f: impl FnMut(Direction, &T) -> U) -> PerDirection<U> {
        PerDirection::from_fn(|direction| f(direction, self.get(direction)))
    }

    /// The directions with their values, up first.
    pub fn iter(&self) -> impl Iterator<Item = (Direction, &T)> {
        Direction::ALL
            .into_iter()
            .map(move |direction| (direction, self.get(direction)))
    }
}
