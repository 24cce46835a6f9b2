import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyAddress, isForbiddenHostname } from '../../src/net/ssrf.ts';

const blocked: [string, RegExp][] = [
  ['127.0.0.1', /loopback/],
  ['127.255.255.254', /loopback/],
  ['0.0.0.0', /unspecified/],
  ['10.1.2.3', /private/],
  ['172.16.0.1', /private/],
  ['172.31.255.255', /private/],
  ['192.168.1.1', /private/],
  ['169.254.169.254', /link-local/],
  ['100.64.0.1', /carrier-grade/],
  ['100.127.255.255', /carrier-grade/],
  ['224.0.0.1', /multicast/],
  ['239.255.255.250', /multicast/],
  ['255.255.255.255', /reserved/],
  ['198.18.0.1', /benchmarking/],
  ['::1', /loopback/],
  ['::', /unspecified/],
  ['fc00::1', /unique local/],
  ['fd12:3456:789a::1', /unique local/],
  ['fe80::1', /link-local/],
  ['febf:ffff::1', /link-local/],
  ['ff02::1', /multicast/],
  ['::ffff:127.0.0.1', /IPv4-mapped IPv6 of loopback/],
  ['::ffff:7f00:1', /IPv4-mapped IPv6 of loopback/],
  ['::ffff:169.254.169.254', /IPv4-mapped IPv6 of link-local/],
  ['::ffff:10.0.0.1', /IPv4-mapped IPv6 of private/],
  ['::ffff:0:127.0.0.1', /IPv4-translated/],
  ['::127.0.0.1', /IPv4-compatible/],
  ['64:ff9b::a9fe:a9fe', /NAT64 IPv6 of link-local/],
  ['2002:7f00:0001::1', /6to4 IPv6 of loopback/],
  ['2001:db8::1', /documentation/],
  ['[::1]', /loopback/],
  ['fe80::1%eth0', /zone/],
  ['example.com', /not an IP/],
  ['1.2.3', /not an IP/],
];

const allowed = [
  '8.8.8.8',
  '1.1.1.1',
  '172.32.0.1',
  '172.15.255.255',
  '100.63.255.255',
  '100.128.0.1',
  '192.169.0.1',
  '2606:4700:4700::1111',
  '2a00:1450:4001:82b::200e',
  '::ffff:8.8.8.8',
  '64:ff9b::808:808',
];

test('blocked addresses are refused with the reason', () => {
  for (const [addr, reason] of blocked) {
    const v = classifyAddress(addr);
    assert.equal(v.allowed, false, `${addr} must be blocked`);
    if (!v.allowed) assert.match(v.reason, reason, addr);
  }
});

test('public addresses are allowed', () => {
  for (const addr of allowed) assert.deepEqual(classifyAddress(addr), { allowed: true }, addr);
});

test('allowLoopback opens loopback only, never private or link-local', () => {
  for (const addr of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) {
    assert.equal(classifyAddress(addr, { allowLoopback: true }).allowed, true, addr);
  }
  for (const addr of ['10.0.0.1', '169.254.169.254', 'fe80::1', '192.168.0.1']) {
    assert.equal(classifyAddress(addr, { allowLoopback: true }).allowed, false, addr);
  }
});

test('local host names are forbidden before any DNS lookup', () => {
  for (const h of ['localhost', 'LOCALHOST.', 'api.localhost', 'printer.local', 'metadata.google.internal'])
    assert.equal(isForbiddenHostname(h), true, h);
  for (const h of ['example.com', 'localhost.example.com']) assert.equal(isForbiddenHostname(h), false, h);
});
