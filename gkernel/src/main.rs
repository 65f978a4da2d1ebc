#![no_std]
#![no_main]
#[macro_use] extern crate axstd as std;
#[unsafe(no_mangle)] fn main(){ println!("hi"); }
