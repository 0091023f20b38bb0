//! Integration tests of the origin store against real servers on 127.0.0.1:0.
