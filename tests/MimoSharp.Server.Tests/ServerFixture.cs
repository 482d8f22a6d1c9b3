using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using MimoSharp.Server;

namespace MimoSharp.Server.Tests;

/// <summary>
/// A real <c>mimo serve</c> host (the same Kestrel app, in-process) on 127.0.0.1 and a random port, over
/// a random tiny model that `mimo create-random --preset tiny` writes into a temp directory.
/// </summary>
public class ServerFixture : IAsyncLifetime
{
    public const string ApiKey = "sk-mimo-test";
    public const string ModelName = "tiny";
    public const long BodyLimit = 256 * 1024;

    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"mimosharp-server-tests-{Environment.ProcessId}-{Guid.NewGuid():N}");

    public MimoServer Server { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;
    public string ModelDirectory => Path.Combine(_directory, "tiny");
    public StringWriter Log { get; } = new();

    public Uri BaseUrl => Server.BaseUrl;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        var output = new StringWriter();
        int code = Cli.Program.Run(["create-random", "--preset", "tiny", "--output", ModelDirectory], output, output);
        Assert.True(code == 0, output.ToString());
        // The model's own sampling defaults: greedy (requests that name a temperature still sample).
        File.WriteAllText(Path.Combine(ModelDirectory, "generation_config.json"), """{"do_sample": false, "top_p": 0.95}""");
        Server = await MimoServer.StartAsync(Configure(new ServerOptions
        {
            ModelDirectory = ModelDirectory,
            Port = 0,
            ApiKey = ApiKey,
            ServedModelName = ModelName,
            MaxRequestBodyBytes = BodyLimit,
            Log = TextWriter.Synchronized(Log),
        }));
        await Server.Ready;
        Http = new HttpClient { BaseAddress = Server.BaseUrl, Timeout = TimeSpan.FromSeconds(120) };
        Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
    }

    /// <summary>The options the server starts with (a derived fixture changes its limits).</summary>
    protected virtual ServerOptions Configure(ServerOptions options) => options;

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public async Task<(int Status, JsonNode? Body, string Text)> PostJson(string path, string json, bool auth = true, IDictionary<string, string>? headers = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (!auth)
        {
            request.Headers.Authorization = null;
            request.Headers.TryAddWithoutValidation("Authorization", "");
        }
        foreach ((string name, string value) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
        HttpClient client = auth ? Http : new HttpClient { BaseAddress = Server.BaseUrl };
        HttpResponseMessage response = await client.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        JsonNode? body = null;
        try
        {
            body = JsonNode.Parse(text);
        }
        catch (System.Text.Json.JsonException)
        {
        }
        if (!auth)
        {
            client.Dispose();
        }
        return ((int)response.StatusCode, body, text);
    }
}

[CollectionDefinition(Name)]
public sealed class ServerCollection : ICollectionFixture<ServerFixture>
{
    public const string Name = "server";
}
