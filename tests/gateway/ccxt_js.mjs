// Stock ccxt for JavaScript through the hsm-custody gateway with `proxyUrl` (issue 28;
// docs/gateway.md). For each case, the same request is made twice at the same frozen time: by
// ccxt holding the real secret, sent straight to the stand-in exchange (TLS, the exchange's
// host name), and by ccxt holding only a placeholder secret with `proxyUrl` set to the gateway,
// which re-signs it in the token. The stand-in verifies each signature with its server-side
// model and echoes what it received; both echoes must be verified and identical.
//
//   node ccxt_js.mjs plan                       TSV: host, exchange, key, api key, passphrase,
//                                               secret, encoding (test values only)
//   node ccxt_js.mjs run GATEWAY STANDIN CA     compare; exit 1 when anything differs
//
// Driven by the Rust test `gateway::ccxt_js_through_the_gateway_with_proxy_url`.
import { createRequire } from 'node:module';
import https from 'node:https';
import fs from 'node:fs';
import crypto from 'node:crypto';

// ccxt from the npm project directory the test made (`CCXT_JS_DIR`, with node_modules/ccxt).
const ccxt = createRequire(`${process.env.CCXT_JS_DIR ?? process.cwd()}/`)('ccxt');

const API_KEY = 'gateway-js-api-key-0123456789';
const PASSPHRASE = 'gateway-js-passphrase';
// base64 of a text saying where the real secret is (hsm_custody.ccxt.PLACEHOLDER_SECRET)
const PLACEHOLDER = Buffer.from(
    'hsm-custody placeholder: the API secret is in the PKCS#11 token, not here').toString('base64');
const secret = (name, b64) => {
    const d = crypto.createHash('sha512').update('hsm-custody gateway js ' + name).digest();
    return b64 ? d.toString('base64') : d.toString('hex').slice(0, 48);
};

const ORDER_BN = { symbol: 'BTCUSDT', side: 'BUY', type: 'LIMIT', timeInForce: 'GTC',
    quantity: '0.001', price: '30000' };
const VENUES = [
    { id: 'binance', exchange: 'binance', host: 'api.binance.com', cases: [
        ['account', 'private', 'GET', { omitZeroBalances: 'true' }],
        ['order', 'private', 'POST', ORDER_BN],
        ['order', 'private', 'DELETE', { symbol: 'BTCUSDT', orderId: '28' }],
    ] },
    { id: 'okx', exchange: 'okx', host: 'www.okx.com', password: true, cases: [
        ['account/balance', 'private', 'GET', { ccy: 'BTC,USDT' }],
        ['trade/order', 'private', 'POST', { instId: 'BTC-USDT', tdMode: 'cash', side: 'buy',
            ordType: 'limit', sz: '0.01', px: '30000' }],
    ] },
    { id: 'kraken', exchange: 'kraken', host: 'api.kraken.com', b64: true, cases: [
        ['Balance', 'private', 'POST', {}],
        ['AddOrder', 'private', 'POST', { pair: 'XBTUSD', type: 'buy', ordertype: 'limit',
            price: '30000', volume: '0.01' }],
    ] },
    { id: 'bybit', exchange: 'bybit', host: 'api.bybit.com', cases: [
        ['v5/account/wallet-balance', 'private', 'GET', { accountType: 'UNIFIED' }],
        ['v5/order/create', 'private', 'POST', { category: 'spot', symbol: 'BTCUSDT',
            side: 'Buy', orderType: 'Limit', qty: '0.01', price: '30000' }],
    ] },
];
const keyOf = (v) => 'js-' + v.id;

let frozen = 0;
function instance(v, sec) {
    const config = { apiKey: API_KEY, secret: sec, enableRateLimit: false };
    if (v.password) config.password = PASSPHRASE;
    const ex = new ccxt[v.id](config);
    ex.milliseconds = () => frozen;
    ex.seconds = () => Math.floor(frozen / 1000);
    ex.microseconds = () => frozen * 1000;
    ex.uuid = () => '3b241101-e2bb-4255-8caf-4136c566a962';
    ex.uuid16 = () => '0123456789abcdef';
    ex.uuid22 = () => '0123456789abcdef012345';
    ex.options.timeDifference = 0;
    return ex;
}

function direct(req, host, standin, ca) {
    const [ip, port] = standin.split(':');
    const url = new URL(req.url);
    return new Promise((resolve, reject) => {
        const r = https.request({ host: ip, port: Number(port), servername: host, ca,
            method: req.method, path: url.pathname + url.search,
            headers: { Host: host, ...(req.headers || {}) } }, (res) => {
            let data = '';
            res.on('data', (c) => { data += c; });
            res.on('end', () => resolve(JSON.parse(data)));
        });
        r.on('error', reject);
        if (req.body !== undefined && req.body !== null) r.write(req.body);
        r.end();
    });
}

async function viaGateway(v, c, gateway) {
    const ex = instance(v, PLACEHOLDER);
    ex.proxyUrl = gateway.replace(/\/$/, '') + '/';
    try {
        return await ex.request(c[0], c[1], c[2], structuredClone(c[3]));
    } catch (e) {
        // The echo is not what this exchange answers on success (OKX's `code` "0" ...): ccxt
        // raises after the round trip, quoting the reply.
        const text = String(e.message);
        const at = text.indexOf('{"body"');
        if (at < 0) throw e;
        return JSON.parse(text.slice(at));
    }
}

const comparable = (e) => JSON.stringify(
    ['method', 'path', 'query', 'body', 'headers'].map((k) => e[k]));

async function run(gateway, standin, caFile) {
    const ca = fs.readFileSync(caFile);
    let failed = false;
    console.log(`ccxt ${ccxt.version} (JavaScript) through the gateway with proxyUrl\n`);
    console.log('| ccxt id | request | result |\n|---|---|---|');
    for (const v of VENUES) {
        for (const c of v.cases) {
            frozen = Date.now();
            const label = `${c[2]} ${c[0]}`;
            try {
                const stock = instance(v, secret(keyOf(v), v.b64));
                const req = stock.sign(c[0], c[1], c[2], structuredClone(c[3]));
                const a = await direct(req, v.host, standin, ca);
                const b = await viaGateway(v, c, gateway);
                const problems = [];
                if (!a.verified) problems.push('direct not verified');
                if (!b.verified) problems.push('gateway not verified');
                if (comparable(a) !== comparable(b)) {
                    problems.push('differs');
                    console.error(`--- ${v.id} ${label}\n  direct:  ${comparable(a)}\n  gateway: ${comparable(b)}`);
                }
                failed ||= problems.length > 0;
                console.log(`| ${v.id} | ${label} | ${problems.join('; ') || 'identical, verified'} |`);
            } catch (e) {
                failed = true;
                console.log(`| ${v.id} | ${label} | **error** ${e.constructor.name}: ${e.message} |`);
            }
        }
    }
    return failed ? 1 : 0;
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'plan') {
    for (const v of VENUES) {
        console.log([v.host, v.exchange, keyOf(v), API_KEY, v.password ? PASSPHRASE : '',
            secret(keyOf(v), v.b64), v.b64 ? 'b64' : '-'].join('\t'));
    }
} else if (cmd === 'run' && args.length === 3) {
    process.exitCode = await run(...args);
} else {
    console.error('usage: node ccxt_js.mjs plan | run GATEWAY STANDIN CA');
    process.exitCode = 2;
}
