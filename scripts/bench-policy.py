"""The cost of the access policy on latency, measured over HTTP against a running demo.

Usage: start `carerecord demo --listen 127.0.0.1:PORT > demo.out`, then
    python3 scripts/bench-policy.py demo.out http://127.0.0.1:PORT ROUNDS

It signs in as the demo's care-home nurse (scoped by the policy) and as the demo's service
client (unrestricted), then sends the same patient-scoped searches and reads for the nurse's
residents as each, alternating, and prints p50/p99 and the nurse/service ratios. Both identities
are audited the same way, so the ratio is the policy's cost alone. Only synthetic demo data.
A TOTP code is accepted once: wait for the next 30-second step before running it again.
"""
import base64, hashlib, hmac, json, re, statistics, struct, sys, time, urllib.request

out = open(sys.argv[1]).read()
base = sys.argv[2]
def post(url,data,headers):
    req=urllib.request.Request(url,data=data,headers=headers,method='POST')
    return json.load(urllib.request.urlopen(req))
m=re.search(r'^  nurse\s.*password (\S+)\s+TOTP secret (\S+)',out,re.M)
pw,secret=m.group(1),m.group(2)
s=base64.b32decode(secret); c=int(time.time())//30
h=hmac.new(s,struct.pack('>Q',c),hashlib.sha1).digest(); o=h[-1]&15
code='%06d'%((struct.unpack('>I',h[o:o+4])[0]&0x7fffffff)%1000000)
nurse=post(base+'/auth/login',json.dumps({'username':'nurse','password':pw,'totp':code}).encode(),{'content-type':'application/json'})['access_token']
m=re.search(r'demo-service / (\S+)',out)
cred=base64.b64encode(('demo-service:'+m.group(1)).encode()).decode()
svc=post(base+'/auth/token',b'grant_type=client_credentials',{'authorization':'Basic '+cred,'content-type':'application/x-www-form-urlencoded'})['access_token']
def get(path,tok):
    req=urllib.request.Request(base+'/fhir/'+path,headers={'authorization':'Bearer '+tok})
    t=time.perf_counter(); r=urllib.request.urlopen(req); r.read(); return time.perf_counter()-t
# residents the nurse can see
ids=[]
req=urllib.request.Request(base+'/fhir/Patient?_count=30&_elements=id',headers={'authorization':'Bearer '+nurse})
for e in json.load(urllib.request.urlopen(req)).get('entry',[]):
    if e['search']['mode']=='match': ids.append(e['resource']['id'])
ids=ids[:20]
def run(tok,kind):
    lat=[]
    for rnd in range(int(sys.argv[3])):
        for p in ids:
            path = f'Observation?subject=Patient/{p}&_count=20' if kind=='search' else f'Patient/{p}'
            lat.append(get(path,tok))
    lat.sort(); return statistics.median(lat)*1000, lat[int(len(lat)*0.99)-1]*1000
for kind in ['search','read']:
    for rnd in range(2):
        a=run(svc,kind); b=run(nurse,kind)
        print(f'{kind} round {rnd}: service p50 {a[0]:.2f} ms p99 {a[1]:.2f} ms | nurse p50 {b[0]:.2f} ms p99 {b[1]:.2f} ms | ratio p50 {b[0]/a[0]:.2f} p99 {b[1]/a[1]:.2f}')
