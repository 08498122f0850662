#!/usr/bin/env node
console.log('sipweigh: under construction');
