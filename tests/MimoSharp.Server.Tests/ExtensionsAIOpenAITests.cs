using System.ClientModel;
using Microsoft.Extensions.AI;
using OpenAI;

namespace MimoSharp.Server.Tests;

/// <summary>Microsoft.Extensions.AI.OpenAI's IChatClient (the OpenAI SDK underneath) against a real <c>mimo serve</c>.</summary>
[Collection(ServerCollection.Name)]
public sealed class ExtensionsAIOpenAITests(ServerFixture fixture)
{
    private IChatClient Client() => new OpenAIClient(new ApiKeyCredential(ServerFixture.ApiKey),
            new OpenAIClientOptions { Endpoint = new Uri(fixture.BaseUrl, "v1"), NetworkTimeout = TimeSpan.FromSeconds(120) })
        .GetChatClient(ServerFixture.ModelName).AsIChatClient();

    private static ChatOptions Greedy(int maxTokens) => new()
    {
        Temperature = 0f,
        MaxOutputTokens = maxTokens,
        // The OpenAI adapter passes the SDK's own options through: ban the end-of-turn ids there.
        RawRepresentationFactory = _ =>
        {
            var options = new OpenAI.Chat.ChatCompletionOptions();
            foreach (int eos in ByteLevelIds.EndOfTurn)
            {
                options.LogitBiases[eos] = -100;
            }
            return options;
        },
    };

    [Fact]
    public async Task TextStreamingAndUsageAgree()
    {
        using IChatClient client = Client();
        List<ChatMessage> messages = [new(ChatRole.System, "Be brief."), new(ChatRole.User, "Say something")];
        ChatResponse whole = await client.GetResponseAsync(messages, Greedy(16));
        Assert.True(whole.Text.Length > 0);
        Assert.Equal(ChatFinishReason.Length, whole.FinishReason);
        Assert.Equal(16, whole.Usage!.OutputTokenCount);
        Assert.True(whole.Usage.InputTokenCount > 5);
        Assert.Equal(whole.Usage.InputTokenCount + 16, whole.Usage.TotalTokenCount);
        Assert.Equal(ServerFixture.ModelName, whole.ModelId);

        var updates = new List<ChatResponseUpdate>();
        await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync(messages, Greedy(16)))
        {
            updates.Add(update);
        }
        Assert.True(updates.Count >= 3, $"expected a stream of updates, got {updates.Count}");
        Assert.Equal(whole.Text, string.Concat(updates.Select(u => u.Text)));
        Assert.Contains(updates, u => u.FinishReason == ChatFinishReason.Length);
        UsageDetails usage = Assert.Single(updates.SelectMany(u => u.Contents).OfType<UsageContent>()).Details;
        Assert.Equal(16, usage.OutputTokenCount);
        Assert.Equal(whole.Usage.InputTokenCount, usage.InputTokenCount);
        // The same prompt again: its prefix came from the cache and the usage says so.
        Assert.InRange(usage.CachedInputTokenCount ?? 0, 1, usage.InputTokenCount!.Value);
    }

    [Fact]
    public async Task StopSequencesAndMetadataPassThrough()
    {
        using IChatClient client = Client();
        string full = (await client.GetResponseAsync([new(ChatRole.User, "xyz")], Greedy(30))).Text;
        Assert.True(full.Length >= 6, $"answer too short: \"{full}\"");
        int cut = full.Length / 2;
        while (cut < full.Length - 2 && char.IsSurrogate(full[cut]))
        {
            cut++;
        }
        string stop = full.Substring(cut, 2);
        ChatOptions options = Greedy(30);
        options.StopSequences = [stop];
        ChatResponse stopped = await client.GetResponseAsync([new(ChatRole.User, "xyz")], options);
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], stopped.Text);
        Assert.Equal(ServerFixture.ModelName, client.GetService<ChatClientMetadata>()!.DefaultModelId);
    }
}
